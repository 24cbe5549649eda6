"""The embedded twin region: files, grids, determinism, designed truth, observations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hybridland import contract
from hybridland.data import twin
from hybridland.data.grids import UCRB_BOX, Box
from hybridland.data.twin import design, grids, weather
from hybridland.model import parameters

TINY_BOX = Box(west=-108.5, east=-107.0, south=38.5, north=39.5)
NETCDF = [k for k, f in twin.FILENAMES.items() if f.endswith(".nc")]
GEOTIFF = [k for k, f in twin.FILENAMES.items() if f.endswith(".tif")]


def tiny(seed: int = 7, **changes) -> twin.TwinConfig:
    return twin.TwinConfig(box=TINY_BOX, years=(2010, 2012), seed=seed, **changes)


def noise_free(seed: int) -> twin.TwinConfig:
    return tiny(
        seed,
        noise={k: twin.Noise(0.0, 0.0) for k in twin.DEFAULT_NOISE},
        gaps={k: 0.0 for k in twin.DEFAULT_GAPS},
        snow_threshold=-100.0,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Two runs with the same seed and one noise-free run with another seed."""
    out = {}
    for name, config in (("a", tiny(7)), ("a_again", tiny(7)), ("clean", noise_free(8))):
        out[name] = twin.synthesize(config, tmp_path_factory.mktemp(name))
    return out


@pytest.fixture(scope="module")
def files(runs) -> dict[str, Path]:
    return runs["a"]


def arrays(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".csv":
        table = pd.read_csv(path)
        return {c: table[c].to_numpy() for c in table.columns}
    if path.suffix == ".tif":
        import rioxarray

        return {"band": rioxarray.open_rasterio(path).values}
    with xr.open_dataset(path, decode_times=False) as ds:
        return {k: ds[k].values for k in ds.variables}


def open_nc(path: Path, **kw) -> xr.Dataset:
    with xr.open_dataset(path, **kw) as ds:
        return ds.load()


# -- files and formats ---------------------------------------------------------


def test_every_file_is_written_and_no_temporaries_remain(files):
    assert set(files) == set(twin.FILENAMES)
    folder = next(iter(files.values())).parent
    assert {p.name for p in folder.iterdir()} == set(twin.FILENAMES.values())
    for name, path in files.items():
        assert path.name == twin.FILENAMES[name]
        assert path.stat().st_size > 0


def test_same_seed_gives_identical_arrays(runs):
    for name, path in runs["a"].items():
        first, second = arrays(path), arrays(runs["a_again"][name])
        assert first.keys() == second.keys(), name
        for key in first:
            np.testing.assert_array_equal(first[key], second[key], err_msg=f"{name}:{key}")


def test_another_seed_gives_another_landscape(runs):
    for name in ("truth_predictors", "elevation", "forcing"):
        a, b = arrays(runs["a"][name]), arrays(runs["clean"][name])
        key = {"truth_predictors": "elevation", "elevation": "band", "forcing": "t_max"}[name]
        assert not np.array_equal(a[key], b[key], equal_nan=True), name


@pytest.mark.parametrize("product", sorted(twin.PRODUCT_GRIDS))
def test_gridded_products_are_on_their_native_grid(files, product):
    ds = open_nc(files[product])
    spec = twin.PRODUCT_GRIDS[product]
    for axis, step, low, high in (
        ("lat", spec.dlat, TINY_BOX.south, TINY_BOX.north),
        ("lon", spec.dlon, TINY_BOX.west, TINY_BOX.east),
    ):
        centres, bounds = ds[axis].values, ds[f"{axis}_bnds"].values
        assert ds[axis].attrs["bounds"] == f"{axis}_bnds"
        assert ds[axis].attrs["units"] == ("degrees_north" if axis == "lat" else "degrees_east")
        np.testing.assert_allclose(np.diff(bounds, axis=1)[:, 0], step, atol=1e-9)
        np.testing.assert_allclose(bounds[1:, 0], bounds[:-1, 1], atol=1e-9)
        np.testing.assert_allclose(centres, bounds.mean(1), atol=1e-9)
        assert bounds[0, 0] <= low + 1e-9 and bounds[-1, 1] >= high - 1e-9
        assert bounds[0, 0] > low - step and bounds[-1, 1] < high + step


def test_lai_grid_is_anchored_at_the_box_corner_and_nbe_on_geos_chem_4x5(files):
    lai = open_nc(files["lai"])
    assert lai.lat_bnds.values[0, 0] == pytest.approx(TINY_BOX.south)
    assert lai.lon_bnds.values[0, 0] == pytest.approx(TINY_BOX.west)
    nbe = open_nc(files["nbe"])
    np.testing.assert_allclose(nbe.lat_bnds.values % 4.0, 0.0, atol=1e-9)
    np.testing.assert_allclose((nbe.lon_bnds.values - 2.5) % 5.0, 0.0, atol=1e-9)
    fraction = nbe.area_fraction_in_box.values
    assert np.all((fraction > 0) & (fraction <= 1))


@pytest.mark.parametrize("name", GEOTIFF)
def test_geotiffs_are_epsg4326_at_1km(files, name):
    import rioxarray

    raster = rioxarray.open_rasterio(files[name])
    assert raster.rio.crs.to_epsg() == 4326
    dx, dy = raster.rio.resolution()
    assert dx == pytest.approx(1 / 120, abs=1e-12) and dy == pytest.approx(-1 / 120, abs=1e-12)
    west, south, east, north = raster.rio.bounds()
    assert west == pytest.approx(TINY_BOX.west) and south == pytest.approx(TINY_BOX.south)
    assert east >= TINY_BOX.east - 1e-9 and north >= TINY_BOX.north - 1e-9
    assert raster.attrs["units"] in ("m", "yr")


def test_netcdf_variables_carry_units(files):
    for name in NETCDF:
        ds = open_nc(files[name])
        assert ds.attrs["Conventions"].startswith("CF")
        for var in ds.data_vars:
            assert "units" in ds[var].attrs or ds[var].dtype.kind in "OU", f"{name}:{var}"


def test_forcing_units_and_time_axis(files):
    ds = open_nc(files["forcing"])
    expected = {
        "t_min": "degC",
        "t_max": "degC",
        "rad": "MJ m-2 d-1",
        "vpd": "hPa",
        "precip": "mm d-1",
        "burned_area": "1",
    }
    assert {v: ds[v].attrs["units"] for v in expected} == expected
    assert ds.sizes["time"] == 36
    raw = open_nc(files["forcing"], decode_times=False)
    assert raw.time.attrs["units"].startswith("days since 2000-01-01")
    assert raw.time.values[0] == pytest.approx(3653 + 15.5)  # mid-January 2010
    assert np.all(ds.t_max.values > ds.t_min.values)
    assert np.all(ds.precip.values > 0) and np.all(ds.vpd.values > 0)
    assert np.all((ds.burned_area.values >= 0) & (ds.burned_area.values < 1))


def test_calendar_is_mid_month_with_calendar_lengths():
    cal = weather.twin_calendar(2012, 2012)
    assert cal.ndays.tolist() == [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    assert (
        cal.days[0]
        == (np.datetime64("2012-01-01") - np.datetime64("2000-01-01")).astype(float) + 15.5
    )
    assert cal.doy[0] == 16.0 and cal.doy[1] == 32 + 14.0


def test_co2_table_rises_about_2_3_ppm_per_year(files):
    table = pd.read_csv(files["co2"])
    assert list(table.columns) == ["year", "month", "co2_ppm"]
    annual = table.groupby("year").co2_ppm.mean()
    assert 388.0 < annual.iloc[0] < 390.0
    assert np.diff(annual.values) == pytest.approx(2.3, abs=0.05)


# -- land cover, soil and predictors ------------------------------------------------


def test_landcover_classes_are_igbp_uint8(files):
    raw = open_nc(files["landcover"], mask_and_scale=False)
    classes = raw.igbp_class.values
    assert classes.dtype == np.uint8 and raw.igbp_class.attrs["_FillValue"] == 255
    assert classes.max() <= 16
    assert len(raw.igbp_class.attrs["flag_meanings"].split()) == 17
    percent = raw.igbp_percent.values.astype(int)
    assert np.all(np.abs(percent.sum(0) - 100) <= 9)  # rounded per class, as in MCD12C1
    majority = np.take_along_axis(percent, classes[None].astype(int), axis=0)[0]
    np.testing.assert_array_equal(majority, percent.max(0))


def test_pft_fractions_are_valid(files):
    ds = open_nc(files["truth_predictors"])
    land = ds.land_mask.values.astype(bool)
    fractions = np.stack([ds[p].values[land] for p in contract.PFT])
    assert np.all((fractions >= 0) & (fractions <= 1 + 1e-6))
    np.testing.assert_allclose(fractions.sum(0), 1.0, atol=1e-5)
    assert np.isnan(ds.NF.values[~land]).all()
    present = [p for p in contract.PFT if fractions[contract.PFT.index(p)].max() > 0.5]
    assert len(present) >= 4, present


def test_soil_texture_sums_to_100(files):
    ds = open_nc(files["soil"])
    total = (ds.SAND + ds.SILT + ds.CLAY).values
    finite = np.isfinite(total)
    assert finite.mean() > 0.9
    np.testing.assert_allclose(total[finite], 100.0, atol=1e-3)
    assert np.nanmin(ds.BULK_DEN.values) >= 0.9 and np.nanmax(ds.BULK_DEN.values) <= 1.8
    assert np.nanmin(ds.GRAVEL.values) >= 0 and np.nanmax(ds.GRAVEL.values) <= 60


def test_forest_structure_is_zero_off_forest_and_height_grows_with_age(files):
    import rioxarray

    age = rioxarray.open_rasterio(files["forest_age"]).values[0]
    height = rioxarray.open_rasterio(files["canopy_height"]).values[0]
    forest = age > 0
    assert forest.any() and (~forest & np.isfinite(age)).any()
    assert np.all(height[np.isfinite(age) & ~forest] == 0)
    young, old = forest & (age < 30), forest & (age > 100)
    assert height[young].mean() < height[old].mean()


# -- the designed truth -------------------------------------------------------------


def predictor_table(n: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    fractions = rng.dirichlet(np.full(len(contract.PFT), 0.5), size=n).T
    table = {p: fractions[i] for i, p in enumerate(contract.PFT)}
    table.update(
        MAT=rng.uniform(-6, 16, n),
        MAP=rng.uniform(100, 1500, n),
        elevation=rng.uniform(1200, 4300, n),
        canopy_height=rng.uniform(0, 30, n),
        forest_age=rng.uniform(0, 250, n),
        BULK_DEN=rng.uniform(1.0, 1.7, n),
        SAND=rng.uniform(10, 80, n),
        SILT=rng.uniform(10, 60, n),
        CLAY=rng.uniform(5, 40, n),
        GRAVEL=rng.uniform(0, 50, n),
    )
    return table


def test_true_parameter_maps_are_within_spec_bounds(files):
    ds = open_nc(files["truth_parameters"])
    land = open_nc(files["truth_predictors"]).land_mask.values.astype(bool)
    assert set(ds.data_vars) == set(parameters.NAMES)
    assert parameters.out_of_bounds({n: ds[n].values[land] for n in parameters.NAMES}) is None
    for n in parameters.NAMES:
        assert ds[n].attrs["units"] == parameters.BY_NAME[n].units


def test_true_parameters_stay_inside_bounds_for_extreme_predictors():
    table = predictor_table(200)
    table.update(MAT=np.linspace(-40, 40, 200), MAP=np.linspace(0, 5000, 200))
    table["NF"] = np.zeros(200)  # and some rows with no cover at all
    for p in contract.PFT:
        table[p] = np.where(np.arange(200) < 20, 0.0, table[p])
    values = twin.true_parameters(table)
    assert parameters.out_of_bounds(values) is None


def test_truth_file_matches_the_function(files):
    predictors = open_nc(files["truth_predictors"])
    stored = open_nc(files["truth_parameters"])
    land = predictors.land_mask.values.astype(bool)
    again = twin.true_parameters({c: predictors[c].values[land] for c in contract.PREDICTORS})
    for n in parameters.NAMES:
        np.testing.assert_allclose(stored[n].values[land], again[n], rtol=1e-6, err_msg=n)


def test_soil_has_no_influence():
    table = predictor_table()
    base = twin.true_parameters(table)
    rng = np.random.default_rng(1)
    changed = {**table, **{c: rng.permutation(table[c]) * 1.7 + 3.0 for c in contract.SOIL}}
    without = {k: v for k, v in table.items() if k not in contract.SOIL}
    assert twin.INFLUENCE["SOIL"] == []
    for other in (twin.true_parameters(changed), twin.true_parameters(without)):
        for n in parameters.NAMES:
            np.testing.assert_array_equal(base[n], other[n], err_msg=n)


@pytest.mark.parametrize("group", ["PFT", "CLIM", "AGE"])
def test_influence_table_lists_exactly_the_parameters_a_group_moves(group):
    table = predictor_table()
    base = twin.true_parameters(table)
    rng = np.random.default_rng(2)
    moved = dict(table)
    for column in contract.PREDICTOR_GROUPS[group]:
        moved[column] = rng.permutation(table[column])
    after = twin.true_parameters(moved)
    changed = {n for n in parameters.NAMES if not np.allclose(base[n], after[n], rtol=1e-12)}
    assert changed == set(twin.INFLUENCE[group])


def test_influence_and_fixed_values_partition_the_parameters():
    listed = set().union(*map(set, twin.INFLUENCE.values()))
    assert listed.isdisjoint(twin.FIXED_VALUES)
    assert listed | set(twin.FIXED_VALUES) == set(parameters.NAMES)


def test_parameters_respond_nonlinearly_to_temperature():
    mat = np.linspace(-5.0, 15.0, 41)
    table = {p: np.full_like(mat, 1.0 if p == "NF" else 0.0) for p in contract.PFT}
    table.update(
        MAT=mat,
        MAP=np.full_like(mat, 600.0),
        elevation=np.full_like(mat, 2500.0),
        canopy_height=np.full_like(mat, 15.0),
        forest_age=np.full_like(mat, 80.0),
    )
    values = twin.true_parameters(table)
    for name in ("Q10", "canopy_efficiency", "f_gpp"):
        second = np.diff(values[name], 2)
        assert np.abs(second).max() > 1e-6 * np.abs(values[name]).max(), name
    ce = values["canopy_efficiency"]
    assert 0 < np.argmax(ce) < mat.size - 1  # a hump with an interior optimum
    assert np.all(np.diff(values["Q10"]) < 0)  # cold soils more sensitive


def test_pft_shifts_leaf_traits():
    def pure(pft: str) -> dict[str, np.ndarray]:
        table = {p: np.array([1.0 if p == pft else 0.0]) for p in contract.PFT}
        table.update(
            MAT=np.array([5.0]),
            MAP=np.array([600.0]),
            elevation=np.array([2500.0]),
            canopy_height=np.array([0.0]),
            forest_age=np.array([0.0]),
        )
        return twin.true_parameters(table)

    nf, dbf, gra = pure("NF"), pure("DBF"), pure("GRA")
    assert nf["LCMA"] > dbf["LCMA"] > gra["LCMA"]
    assert nf["leaf_lifespan"] > 2.0 > dbf["leaf_lifespan"]
    assert gra["Bday"] < dbf["Bday"]  # grass greens up before aspen


def test_true_parameters_needs_its_columns():
    table = predictor_table()
    del table["MAT"]
    with pytest.raises(ValueError, match="MAT"):
        twin.true_parameters(table)


# -- configured truth (overrides) ---------------------------------------------------

OVERRIDES = twin.Overrides(
    {"field_capacity": "SOIL", "Q10": "PFT", "f_fol": "none", "tor_wood": "CLIM", "Csom": "AGE"},
    span=0.25,
    seed=3,
)


def test_overrides_change_exactly_the_named_parameters():
    table = predictor_table(400)
    base, over = twin.true_parameters(table), twin.true_parameters(table, OVERRIDES)
    changed = {n for n in parameters.NAMES if not np.array_equal(base[n], over[n])}
    assert changed == set(OVERRIDES.groups)
    assert parameters.out_of_bounds(over) is None


def test_none_makes_a_parameter_constant_at_its_reference_value():
    values = twin.true_parameters(predictor_table(400), OVERRIDES)["f_fol"]
    assert np.all(values == design.reference_parameters()["f_fol"])


@pytest.mark.parametrize("group", ["PFT", "CLIM", "AGE", "SOIL"])
def test_overridden_parameters_follow_their_group_only(group):
    table = predictor_table()
    base = twin.true_parameters(table, OVERRIDES)
    rng = np.random.default_rng(2)
    moved = {**table, **{c: rng.permutation(table[c]) for c in contract.PREDICTOR_GROUPS[group]}}
    after = twin.true_parameters(moved, OVERRIDES)
    changed = {n for n in parameters.NAMES if not np.allclose(base[n], after[n], rtol=1e-12)}
    driven = {n for n, groups in twin.drivers(OVERRIDES).items() if group in groups}
    assert changed == driven
    assert ("field_capacity" in driven) == (group == "SOIL")


def test_an_override_spans_at_most_its_part_of_the_log_range():
    table = predictor_table(2000)
    for name in ("field_capacity", "Q10", "tor_wood", "Csom"):
        info = parameters.BY_NAME[name]
        width = np.ptp(np.log(twin.true_parameters(table, OVERRIDES)[name]))
        log_range = np.log(info.maximum / info.minimum)
        assert 0.25 * 0.3 * log_range < width <= 0.25 * log_range, name


def test_overrides_are_deterministic_per_seed():
    table = predictor_table()
    first = twin.true_parameters(table, OVERRIDES)["field_capacity"]
    np.testing.assert_array_equal(first, twin.true_parameters(table, OVERRIDES)["field_capacity"])
    other = twin.true_parameters(table, OVERRIDES._replace(seed=4))["field_capacity"]
    assert not np.allclose(first, other)


def test_a_soil_override_needs_the_soil_columns():
    table = {k: v for k, v in predictor_table().items() if k not in contract.SOIL}
    with pytest.raises(ValueError, match="missing predictor column.*BULK_DEN"):
        twin.true_parameters(table, OVERRIDES)


def test_the_truth_file_records_the_designed_drivers(files):
    recorded = twin.truth_drivers(files["truth_parameters"])
    assert recorded == twin.drivers()
    assert recorded["leaf_lifespan"] == ("PFT", "CLIM") and recorded["tor_som"] == ()
    for group, names in twin.INFLUENCE.items():
        assert {n for n, g in recorded.items() if group in g} == set(names)


def test_the_truth_file_records_and_holds_the_overridden_truth(tmp_path):
    config = tiny(
        7,
        overrides={"field_capacity": "SOIL", "tor_wood": "none", "Cwood": "PFT"},
        override_span=0.3,
    )
    files = twin.synthesize(config, tmp_path)
    recorded = twin.truth_drivers(files["truth_parameters"])
    assert recorded == twin.drivers(config.truth_overrides)
    assert recorded["field_capacity"] == ("SOIL",) and recorded["tor_wood"] == ()
    assert recorded["Cwood"] == ("PFT",) and recorded["Q10"] == ("CLIM",)
    assert not any("AGE" in g for g in recorded.values())
    stored = open_nc(files["truth_parameters"])
    assert stored.attrs["influence"].endswith("AGE: none; SOIL: field_capacity")
    predictors = open_nc(files["truth_predictors"])
    land = predictors.land_mask.values.astype(bool)
    again = twin.true_parameters(
        {c: predictors[c].values[land] for c in contract.PREDICTORS}, config.truth_overrides
    )
    for n in parameters.NAMES:
        np.testing.assert_allclose(stored[n].values[land], again[n], rtol=1e-6, err_msg=n)


# -- simulation and observations ----------------------------------------------------


def test_simulation_is_physically_plausible(files):
    ds = open_nc(files["truth_outputs"])
    land = open_nc(files["truth_predictors"]).land_mask.values.astype(bool)
    for var, hi, p99 in (("lai", 10.0, 6.5), ("gpp", 15.0, 10.0), ("et", 10.0, 5.0)):
        values = ds[var].values[:, land]
        assert np.isfinite(values).all(), var
        assert values.min() >= 0.0 and values.max() <= hi, var
        assert np.percentile(values, 99) <= p99, var
    nbe = ds.nbe.values[:, land]
    assert np.isfinite(nbe).all() and abs(nbe.mean()) < 1.0
    assert np.isnan(ds.lai.values[:, ~land]).all()


def test_observations_are_finite_where_present(files):
    for name, var in ((k, v[0]) for k, v in twin.OBS_META.items()):
        values = open_nc(files[name])[var].values
        assert not np.isinf(values).any(), name
        assert np.isfinite(values).mean() > 0.3, name
    sites = open_nc(files["ec_sites"])
    assert sites.sizes["site"] == 6
    for var in ("gpp", "reco", "et"):
        values = sites[var].values
        assert not np.isinf(values).any() and np.nanmin(values) >= 0, var


def test_gap_fractions_follow_the_config(files):
    lai = open_nc(files["lai"])
    summer = lai.lai.values[lai.time.dt.month.values == 7]
    observable = np.isfinite(lai.lai.values).any(0)  # land cells
    nan_summer = np.isnan(summer[:, observable]).mean()
    assert abs(nan_summer - twin.DEFAULT_GAPS["lai"]) < 0.03  # no snow in July: random gaps only
    winter = lai.lai.values[lai.time.dt.month.values == 1][:, observable]
    assert np.isnan(winter).mean() > nan_summer  # snow cover removes winter retrievals
    et = open_nc(files["et"]).et.values
    land = np.isfinite(et).any(0)
    assert abs(np.isnan(et[:, land]).mean() - twin.DEFAULT_GAPS["et"]) < 0.02
    ewt = open_nc(files["ewt"]).ewt_anomaly.values
    missing = np.isnan(ewt).all((1, 2))
    assert np.array_equal(np.isnan(ewt).any((1, 2)), missing)  # whole months only


def spherical_overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return max(hi - lo, 0.0)


def test_noise_free_lai_is_the_area_mean_of_truth(runs):
    """Recompute one 0.073-degree LAI cell by hand from the truth-grid LAI."""
    lai = open_nc(runs["clean"]["lai"])
    truth = open_nc(runs["clean"]["truth_outputs"])
    iy, ix, t = 5, 7, 18
    lat_cell, lon_cell = lai.lat_bnds.values[iy], lai.lon_bnds.values[ix]
    total = weight = 0.0
    for j, (s, n) in enumerate(truth.lat_bnds.values):
        band = spherical_overlap(
            (math.sin(math.radians(s)), math.sin(math.radians(n))),
            (math.sin(math.radians(lat_cell[0])), math.sin(math.radians(lat_cell[1]))),
        )
        for i, (w, e) in enumerate(truth.lon_bnds.values):
            area = band * spherical_overlap((w, e), tuple(lon_cell))
            value = float(truth.lai.values[t, j, i])
            if area > 0 and np.isfinite(value):
                total, weight = total + area * value, weight + area
    assert weight > 0
    assert float(lai.lai.values[t, iy, ix]) == pytest.approx(total / weight, rel=1e-5)
    assert np.isfinite(lai.lai.values[:, np.isfinite(lai.lai.values).any(0)]).all()


def test_noise_free_sites_match_truth_cells(runs):
    sites = open_nc(runs["clean"]["ec_sites"])
    truth = open_nc(runs["clean"]["truth_outputs"])
    for k in range(sites.sizes["site"]):
        cell = truth.gpp.sel(lat=sites.lat.values[k], lon=sites.lon.values[k], method="nearest")
        np.testing.assert_allclose(sites.gpp.values[k], cell.values, rtol=1e-6)
    assert np.all(sites.reco.values > 0)


def test_covered_area_mean_keeps_constants_and_ignores_nan():
    fine = grids.LatLonGrid(grids.Axis(38.0, 0.05, 20), grids.Axis(-108.0, 0.05, 30))
    coarse = grids.box_grid(
        Box(-108.0, -106.5, 38.0, 39.0), grids.GridSpec(0.073, 0.073, None, None)
    )
    field = np.full(fine.shape, 3.5)
    field[:3, :3] = np.nan
    out = grids.covered_area_mean(field, fine, coarse, min_valid=0.0)
    inside_block = np.outer(
        coarse.lat.edges[1:] <= 38.15 + 1e-9, coarse.lon.edges[1:] <= -107.85 + 1e-9
    )
    assert inside_block.sum() == 4
    assert np.isnan(out[inside_block]).all()
    np.testing.assert_allclose(out[~inside_block], 3.5)
    strip = np.full(fine.shape, 3.5)
    strip[:, 0] = np.nan  # the first coarse column keeps 0.023 / 0.073 of its area
    assert np.isnan(grids.covered_area_mean(strip, fine, coarse, min_valid=0.5)[:, 0]).all()
    np.testing.assert_allclose(
        grids.covered_area_mean(strip, fine, coarse, min_valid=0.3)[:, 0], 3.5
    )


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ({"sed": 3}, "sed"),
        ({"box": {"west": -108.0, "wst": -108.0}}, "wst"),
        ({"noise": {"lia": {"relative": 0.1}}}, "lia"),
        ({"noise": {"lai": {"rel": 0.1}}}, "rel"),
        ({"gaps": {"ndvi": 0.1}}, "ndvi"),
        ({"overrides": {"field_capacty": "SOIL"}}, "field_capacty"),
    ],
)
def test_unknown_config_keys_are_named(mapping, key):
    with pytest.raises(ValueError, match=f"'{key}'"):
        twin.TwinConfig.from_mapping(mapping)


def test_config_from_mapping_merges_over_defaults():
    config = twin.TwinConfig.from_mapping(
        {
            "box": {"west": -109.0, "east": -107.0, "south": 38.0, "north": 39.5},
            "years": [2011, 2012],
            "seed": 3,
            "noise": {"lai": {"relative": 0.2}},
            "gaps": {"et": 0.1},
        }
    )
    assert config.box == Box(-109.0, -107.0, 38.0, 39.5)
    assert config.years == (2011, 2012) and config.seed == 3
    assert config.noise["lai"] == twin.Noise(0.2, twin.DEFAULT_NOISE["lai"].absolute)
    assert config.gaps["et"] == 0.1 and config.gaps["lai"] == twin.DEFAULT_GAPS["lai"]
    assert config.overrides == {} and config.override_span == 0.25
    overridden = twin.TwinConfig.from_mapping({"seed": 5, "overrides": {"Q10": "none"}})
    assert overridden.truth_overrides == twin.Overrides({"Q10": "none"}, 0.25, 5)
    assert twin.TwinConfig.from_mapping({}) == twin.TwinConfig()


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"box": {"west": -100.0, "east": -110.0}}, "box"),
        ({"years": [2012, 2010]}, "years"),
        ({"truth_resolution": 0.03}, "truth_resolution"),
        ({"gaps": {"lai": 1.5}}, "gaps.lai"),
        ({"n_sites": -1}, "n_sites"),
        ({"overrides": {"Q10": "soil"}}, "overrides.Q10: 'soil' is not one of PFT, CLIM"),
        ({"override_span": 0.0}, "override_span"),
    ],
)
def test_bad_config_values_are_named(mapping, message):
    with pytest.raises(ValueError, match=message):
        twin.TwinConfig.from_mapping(mapping)


def test_default_box_is_the_ucrb_nldas_window():
    grid = grids.box_grid(UCRB_BOX, grids.GridSpec(0.125, 0.125))
    assert grid.shape == (54, 63)
    truth = grids.truth_grid(twin.TwinConfig())
    assert truth.lat.step == 0.05 and truth.shape == (135, 158)
