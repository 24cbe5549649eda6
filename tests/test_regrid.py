"""Tests for hybridland.data.regrid on grids small enough to check by hand."""

import itertools
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers the .rio accessor used to write test rasters)
import xarray as xr

from hybridland import contract, io
from hybridland.data import landcover, regrid
from hybridland.data.grids import Box, Grid, standard_grid

BOX = Box(west=-110.0, east=-107.0, south=37.0, north=39.5)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


def cells(resolution: float, box: Box = BOX, name: str = "source") -> Grid:
    return Grid.regular(name, resolution, *box, anchor=0.0)


def on(grid: Grid, values: np.ndarray, name: str = "x", **attrs: str) -> xr.DataArray:
    """A DataArray on ``grid``; a leading axis of ``values`` becomes ``time``."""
    dims = ("lat", "lon") if values.ndim == 2 else ("time", "lat", "lon")
    coords = {"lat": np.asarray(grid.lat), "lon": np.asarray(grid.lon)}
    return xr.DataArray(values, dims=dims, coords=coords, name=name, attrs=attrs)


def random_field(rng: np.random.Generator, grid: Grid, ntime: int = 2) -> xr.DataArray:
    return on(grid, rng.random((ntime, *grid.shape)) * 300.0, units="K", long_name="temperature")


def area_total(field: xr.DataArray, grid: Grid) -> np.ndarray:
    """Area integral over (lat, lon) for each leading index."""
    return np.nansum(field.transpose(..., "lat", "lon").values * grid.cell_area(), axis=(-2, -1))


# ---------------------------------------------------------------- conservative


@pytest.mark.parametrize(
    ("source_res", "target"),
    [(1 / 40, "0p25deg"), (1 / 40, "0p125deg"), (0.125, "0p25deg"), (0.25, "0p125deg")],
    ids=["1/40->0p25", "1/40->0p125", "0p125->0p25", "0p25->0p125"],
)
def test_conservative_preserves_area_weighted_total(rng, source_res, target):
    source = cells(source_res)
    grid = standard_grid(target, BOX)
    field = random_field(rng, source)
    out = regrid.conservative(field, grid)
    assert out.dims == ("time", "lat", "lon") and out.shape == (2, *grid.shape)
    assert not bool(out.isnull().any())
    np.testing.assert_allclose(area_total(out, grid), area_total(field, source), rtol=1e-6)


def test_conservative_measured_error_on_non_nested_grid(rng):
    # xarray-regrid weights a source cell split by a target edge by its overlap in
    # degrees times its own band area, which is not exact on the sphere: about 2e-6
    # relative for 0.1 -> 0.25 deg at 38 N (xesmf integrates the overlap exactly).
    source, grid = cells(0.1), standard_grid("0p25deg", BOX)
    field = random_field(rng, source)
    out = regrid.conservative(field, grid)
    np.testing.assert_allclose(area_total(out, grid), area_total(field, source), rtol=1e-5)


def test_conservative_reproduces_exact_cell_means_of_a_linear_in_sin_lat_field():
    # The area mean of a + b sin(lat) + c lon over a cell is
    # a + b (sin(south) + sin(north)) / 2 + c lon_centre.
    def exact_means(grid: Grid) -> np.ndarray:
        s = np.sin(np.deg2rad(grid.lat_edges))
        return 2.0 + 5.0 * ((s[:-1] + s[1:]) / 2)[:, None] + 0.1 * np.asarray(grid.lon)[None, :]

    source, grid = cells(1 / 40), standard_grid("0p125deg", BOX)
    out = regrid.conservative(on(source, exact_means(source)), grid, min_valid=1.0)
    np.testing.assert_allclose(out.values, exact_means(grid), rtol=1e-12)


@pytest.mark.parametrize("source_res", [1 / 40, 0.1, 0.073])
def test_conservative_keeps_a_constant(source_res):
    source = Grid.regular("s", source_res, -110.3, -106.7, 36.7, 39.8, anchor=0.0)
    out = regrid.conservative(on(source, np.full(source.shape, 7.5)), standard_grid("0p25deg", BOX))
    np.testing.assert_allclose(out.values, 7.5, rtol=1e-12)


def test_min_valid_masks_cells_with_too_little_valid_area():
    source, grid = cells(0.125), cells(0.25, name="t")
    values = np.ones(source.shape)
    values[0, 0] = np.nan  # target cell (0, 0): 3 of 4 source cells valid
    values[0:2, 2] = np.nan
    values[1, 3] = np.nan  # target cell (0, 1): 1 of 4 valid
    values[1, 1] = 4.0
    area = source.cell_area()
    expected = (area[0, 1] + area[1, 0] + 4.0 * area[1, 1]) / area[[0, 1, 1], [1, 0, 1]].sum()
    half = regrid.conservative(on(source, values), grid, min_valid=0.5)
    assert float(half[0, 0]) == pytest.approx(expected, rel=1e-12)
    assert np.isnan(float(half[0, 1]))
    strict = regrid.conservative(on(source, values), grid, min_valid=0.8)
    assert np.isnan(float(strict[0, 0]))
    loose = regrid.conservative(on(source, values), grid, min_valid=0.2)
    assert float(loose[0, 1]) == 1.0


def test_target_reaching_past_the_source_counts_as_partly_missing():
    grid = standard_grid("0p25deg", BOX)
    # the source stops 3/4 of the way into the last column of target cells
    short = cells(0.0625, Box(-110.0, -107.0625, 37.0, 39.5))
    out = regrid.conservative(on(short, np.ones(short.shape)), grid)
    np.testing.assert_allclose(out.values, 1.0)
    # ... and 1/4 of the way
    shorter = cells(0.0625, Box(-110.0, -107.1875, 37.0, 39.5))
    out = regrid.conservative(on(shorter, np.ones(shorter.shape)), grid)
    assert np.isnan(out.values[:, -1]).all() and not np.isnan(out.values[:, :-1]).any()
    out = regrid.conservative(on(shorter, np.ones(shorter.shape)), grid, min_valid=0.2)
    np.testing.assert_allclose(out.values, 1.0)


def test_conservative_keeps_name_units_and_grid_coordinates(rng):
    grid = standard_grid("0p125deg", BOX)
    out = regrid.conservative(random_field(rng, cells(1 / 40)), grid)
    assert out.name == "x" and out.attrs["units"] == "K"
    np.testing.assert_array_equal(out.lat.values, grid.lat)
    assert out.lat.attrs["bounds"] == "lat_bounds"


def test_conservative_accepts_descending_lat_and_0_360_lon(rng):
    source, grid = cells(1 / 40), standard_grid("0p25deg", BOX)
    field = random_field(rng, source)
    flipped = field.isel(lat=slice(None, None, -1)).assign_coords(lon=field.lon + 360.0)
    xr.testing.assert_allclose(regrid.conservative(flipped, grid), regrid.conservative(field, grid))


def test_field_without_lat_lon_is_rejected():
    field = xr.DataArray(np.zeros((2, 2)), dims=("row", "col"), name="lai")
    with pytest.raises(ValueError, match=r"variable 'lai': dims \('row', 'col'\) lack"):
        regrid.conservative(field, standard_grid("0p25deg", BOX))


def test_source_outside_the_grid_is_rejected():
    source = cells(0.25, Box(10.0, 12.0, 37.0, 39.5))
    with pytest.raises(ValueError, match="lon 10.125..11.875 misses grid '0p25deg'"):
        regrid.conservative(on(source, np.ones(source.shape)), standard_grid("0p25deg", BOX))


def test_backend_choice_is_logged_with_the_reason(caplog):
    regrid.conservative_backend.cache_clear()
    with caplog.at_level(logging.INFO, logger="hybridland.data.regrid"):
        backend = regrid.conservative_backend()
    regrid.conservative_backend.cache_clear()
    if backend == "xarray-regrid":
        assert "xesmf cannot be imported" in caplog.text and "ESMF" in caplog.text
    else:
        assert "using xesmf" in caplog.text


def test_xesmf_backend_agrees_with_xarray_regrid(rng):
    pytest.importorskip(
        "xesmf",
        reason="ESMF is missing: xesmf needs the ESMF library (esmpy), which is not on PyPI",
        exc_type=ImportError,
    )
    source, grid = cells(1 / 40), standard_grid("0p125deg", BOX)
    field = random_field(rng, source)
    by_esmf = regrid.conservative_xesmf(field, grid, 0.5)
    by_xregrid = regrid.conservative_xarray_regrid(field, grid, 0.5)
    np.testing.assert_allclose(by_esmf.values, by_xregrid.values, rtol=1e-9)
    np.testing.assert_allclose(area_total(by_esmf, grid), area_total(field, source), rtol=1e-6)


# ---------------------------------------------------------------- land cover


def test_pft_mapping_covers_every_igbp_land_class_once():
    landcover.check_pft_mapping()
    assert landcover.IGBP_CLASSES[0] == "water" and landcover.IGBP_CLASSES[16] == "barren"
    with pytest.raises(ValueError, match="PFT mapping covers IGBP codes"):
        landcover.check_pft_mapping({**landcover.PFT_FROM_IGBP, "NVG": (13, 15)})
    reordered = dict(reversed(landcover.PFT_FROM_IGBP.items()))
    with pytest.raises(ValueError, match="expected the study's"):
        landcover.check_pft_mapping(reordered)


def test_class_fractions_sum_to_one_on_random_maps(rng):
    source, grid = cells(0.05), standard_grid("0p25deg", BOX)
    codes = rng.integers(0, 17, source.shape).astype(np.uint8)
    codes[rng.random(source.shape) < 0.05] = 255
    codes[:5, :5] = 0  # one all-water target cell
    out = regrid.class_fractions(on(source, codes, name="lc"), grid)
    assert out.pft_fraction.dims == ("pft", "lat", "lon")
    assert list(out.pft.values) == list(contract.PFT)
    total = out.pft_fraction.sum("pft", skipna=False)
    np.testing.assert_allclose(total.values[1:, 1:], 1.0, rtol=1e-12)
    assert np.isnan(out.pft_fraction.values[:, 0, 0]).all()
    assert float(out.land_fraction[0, 0]) == 0.0
    assert float((out.pft_fraction >= 0).sum()) == 10 * (grid.shape[0] * grid.shape[1] - 1)


def test_class_fractions_exact_on_a_hand_built_map():
    # Four 0.25-degree target cells, each 2 x 2 source cells of 0.125 degree.
    source = cells(0.125, Box(-110.0, -109.5, 38.0, 38.5))
    grid = cells(0.25, Box(-110.0, -109.5, 38.0, 38.5), name="t")
    codes = np.array(
        [
            # rows south to north; columns west to east
            [1, 0, 3, 10],
            [1, 0, 3, 12],
            [6, 255, 0, 0],
            [7, 6, 0, 0],
        ],
        dtype=np.uint8,
    )
    out = regrid.class_fractions(on(source, codes), grid)
    frac = out.pft_fraction
    s = np.sin(np.deg2rad(source.lat_edges))
    south_share = (s[1] - s[0]) / (s[2] - s[0])  # area share of the southern row, cell row 0
    # cell (0, 0): ENF on the west half, water on the east half
    assert float(out.land_fraction[0, 0]) == pytest.approx(0.5, rel=1e-12)
    assert float(frac.sel(pft="NF")[0, 0]) == pytest.approx(1.0, rel=1e-12)
    # cell (0, 1): DNF west half; east half grassland (south) and cropland (north)
    assert float(frac.sel(pft="NF")[0, 1]) == pytest.approx(0.5, rel=1e-12)
    assert float(frac.sel(pft="GRA")[0, 1]) == pytest.approx(south_share / 2, rel=1e-12)
    assert float(frac.sel(pft="CRO")[0, 1]) == pytest.approx((1 - south_share) / 2, rel=1e-12)
    # cell (1, 0): three shrubland cells and one fill value
    assert float(frac.sel(pft="SH")[1, 0]) == pytest.approx(1.0, rel=1e-12)
    assert float(out.land_fraction[1, 0]) == pytest.approx(1.0, rel=1e-12)
    # cell (1, 1): all water
    assert np.isnan(frac.values[:, 1, 1]).all() and float(out.land_fraction[1, 1]) == 0.0
    assert float(frac.sel(pft="EBF")[0, 0]) == 0.0


@pytest.mark.parametrize("bad", [17, 254, 3.5, -1])
def test_class_outside_igbp_is_rejected(bad):
    source = cells(0.125, Box(-110.0, -109.5, 38.0, 38.5))
    codes = np.ones(source.shape)
    codes[1, 2] = bad
    with pytest.raises(ValueError, match=f"variable 'lc': value {bad:g} is not an IGBP class"):
        regrid.class_fractions(on(source, codes, name="lc"), cells(0.25, name="t"))


# ---------------------------------------------------------------- canopy height


def test_p95_then_max_on_a_hand_built_example():
    # One row of two 1/8-degree cells; 1/16-degree blocks; 1/32-degree source, so
    # each block holds 2 x 2 source cells and each target cell 2 x 2 blocks.
    grid = Grid.regular("t", 0.125, -109.0, -108.75, 38.0, 38.125, anchor=0.0)
    source = Grid.regular("s", 1 / 32, -109.0, -108.75, 38.0, 38.125, anchor=0.0)
    blocks = {  # (block row, block col) -> the 4 heights in it
        (0, 0): [1, 2, 3, 4],  # p95 = 3 + 0.85 * (4 - 3) = 3.85
        (0, 1): [10, 10, 10, 10],  # 10
        (1, 0): [0, 0, 0, 100],  # 85
        (1, 1): [np.nan, 5, 6, 7],  # 6 + 0.9 * (7 - 6) = 6.9
        (0, 2): [np.nan] * 4,
        (0, 3): [2, 2, 2, 2],
        (1, 2): [1, 1.5, 1, 1],  # 1 + 0.85 * 0.5 = 1.425
        (1, 3): [np.nan, np.nan, np.nan, 1.9],
    }
    heights = np.empty(source.shape)
    for (row, col), values in blocks.items():
        heights[2 * row : 2 * row + 2, 2 * col : 2 * col + 2] = np.reshape(values, (2, 2))
    field = on(source, heights, name="canopy_height", units="m")
    p95 = regrid.block_p95(field, 1 / 16)
    assert p95.shape == (2, 4)
    np.testing.assert_allclose(p95.values, [[3.85, 10, np.nan, 2], [85, 6.9, 1.425, 1.9]])
    out = regrid.p95_then_max(field, grid, block_deg=1 / 16)
    np.testing.assert_allclose(out.values, [[85.0, 2.0]])
    assert out.attrs["units"] == "m" and out.name == "canopy_height"


def test_block_p95_matches_numpy_percentile(rng):
    source = Grid.regular("s", 1 / 480, -109.0, -108.75, 38.0, 38.25, anchor=0.0)
    heights = rng.gamma(2.0, 5.0, source.shape)
    heights[rng.random(source.shape) < 0.1] = np.nan
    p95 = regrid.block_p95(on(source, heights), 1 / 120)
    blocks = heights.reshape(30, 4, 30, 4).transpose(0, 2, 1, 3).reshape(30, 30, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanpercentile(blocks, 95, axis=-1)
    np.testing.assert_allclose(p95.values, expected, rtol=1e-12)


def test_p95_then_max_passes_a_1km_source_through(rng):
    source = Grid.regular("s", 1 / 120, -109.0, -108.5, 38.0, 38.25, anchor=0.0)
    heights = rng.gamma(2.0, 5.0, source.shape)
    grid = Grid.regular("t", 0.125, -109.0, -108.5, 38.0, 38.25, anchor=0.0)
    out = regrid.p95_then_max(on(source, heights), grid)
    expected = heights.reshape(2, 15, 4, 15).max(axis=(1, 3))
    np.testing.assert_allclose(out.values, expected)


# ---------------------------------------------------------------- coarse products


def test_assign_to_cells_on_a_hand_built_4x5_example():
    coarse = xr.DataArray(
        [[1.0, 2.0], [3.0, 4.0]],
        dims=("lat", "lon"),
        coords={
            "lat": [38.0, 42.0],
            "lon": [-110.0, -105.0],
        },  # edges 36/40/44, -112.5/-107.5/-102.5
        name="nbe",
        attrs={"units": "gC m-2 d-1"},
    )
    grid = Grid.regular("t", 0.25, -113.0, -107.0, 39.5, 40.5, anchor=0.0)
    out = regrid.assign_to_cells(coarse, grid)
    lat, lon = np.asarray(grid.lat)[:, None], np.asarray(grid.lon)[None, :]
    expected = np.where(lat < 40.0, 1.0, 3.0) + np.where(lon < -107.5, 0.0, 1.0)
    expected = np.where(lon < -112.5, np.nan, expected)  # west of the coarse grid
    np.testing.assert_array_equal(out.values, expected)
    assert out.attrs["units"] == "gC m-2 d-1"


def test_assign_to_cells_wraps_a_global_grid_and_uses_given_bounds():
    lat = np.arange(-90.0, 90.1, 4.0)
    lat[0], lat[-1] = -89.0, 89.0  # GEOS-Chem 4 x 5: half-size polar rows
    lon = np.arange(-180.0, 180.0, 5.0)
    values = np.arange(lat.size)[:, None] * 100.0 + np.arange(lon.size)[None, :]
    coarse = xr.DataArray(values, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    lat_edges = np.concatenate([[-90.0], np.arange(-88.0, 88.1, 4.0), [90.0]])
    source = Grid(
        "4x5",
        tuple(lat),
        tuple(lon),
        tuple(itertools.pairwise(lat_edges)),
        tuple((x - 2.5, x + 2.5) for x in lon),
    )
    grid = Grid.regular("t", 0.5, 177.0, 180.0, 86.0, 90.0, anchor=0.0)
    out = regrid.assign_to_cells(coarse, grid, source=source)
    # rows: 86.25 and 87.75 N lie in 84..88 (row 44), 88.25 and 89.75 N in the polar row
    # 88..90 (row 45); columns: 177.25 lies in 172.5..177.5 (centre 175, column 71),
    # 177.75 and beyond in 177.5..182.5, the column centred at 180 = -180 (column 0).
    np.testing.assert_array_equal(out.values[:, 0], [4471] * 4 + [4571] * 4)
    np.testing.assert_array_equal(
        out.values[:, 1:], np.repeat([[4400.0], [4500.0]], 4, 0) * np.ones((1, 5))
    )


def test_assign_to_cells_0p5_degree_ewt(rng):
    source = cells(0.5, Box(-111.0, -106.0, 36.0, 40.0))
    ewt = rng.normal(size=source.shape)
    out = regrid.assign_to_cells(on(source, ewt), standard_grid("0p125deg", BOX))
    np.testing.assert_array_equal(out.values, np.repeat(np.repeat(ewt[2:7, 2:8], 4, 0), 4, 1)[:20])


# ---------------------------------------------------------------- files


def write_geotiff(path: Path, crs: str | None, nodata: float = -9999.0) -> None:
    values = np.array([[1.0, 2.0, nodata], [4.0, 5.0, 6.0]], dtype=np.float32)
    raster = xr.DataArray(
        values, dims=("y", "x"), coords={"y": [38.75, 38.25], "x": [-109.75, -109.25, -108.75]}
    )
    raster = raster.rio.write_nodata(nodata)
    if crs is not None:
        raster = raster.rio.write_crs(crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raster.rio.to_raster(path)


def test_open_geotiff_reads_epsg4326_ascending_with_nan(tmp_path):
    path = tmp_path / "canopy_height.tif"
    write_geotiff(path, "EPSG:4326")
    field = regrid.open_geotiff(path)
    assert field.dims == ("lat", "lon") and field.name == "canopy_height"
    np.testing.assert_array_equal(field.lat.values, [38.25, 38.75])
    np.testing.assert_array_equal(field.values, [[4.0, 5.0, 6.0], [1.0, 2.0, np.nan]])


def test_geotiff_in_another_crs_is_rejected(tmp_path):
    path = tmp_path / "mercator.tif"
    write_geotiff(path, "EPSG:3857")
    message = f"{path}: CRS is EPSG:3857; expected EPSG:4326"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        regrid.open_geotiff(path)


def test_geotiff_without_crs_is_rejected(tmp_path):
    path = tmp_path / "bare.tif"
    write_geotiff(path, None)
    message = f"{path}: no CRS found; expected EPSG:4326"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        regrid.open_geotiff(path)


def test_regrid_file_writes_cf_netcdf(tmp_path, rng):
    source, grid = cells(1 / 40), standard_grid("0p125deg", BOX)
    native = random_field(rng, source).to_dataset()
    native["other"] = native.x * 2
    native.to_netcdf(tmp_path / "native.nc")
    destination = tmp_path / "out" / "x.nc"
    regrid.regrid_file(tmp_path / "native.nc", destination, grid, "conservative")
    assert [p.name for p in destination.parent.iterdir()] == ["x.nc"]
    with xr.open_dataset(destination) as out:
        assert out.attrs["grid"] == "0p125deg" and out.attrs["Conventions"] == "CF-1.8"
        assert out.x.attrs["units"] == "K" and out.x.attrs["long_name"] == "temperature"
        assert out.x.dims == ("time", "lat", "lon") and out.x.shape == (2, 54 // 2 - 7, 24)
        assert out.lat.attrs["bounds"] == "lat_bounds" and out.lat_bounds.shape == (20, 2)
        np.testing.assert_allclose(area_total(out.x, grid), area_total(native.x, source), rtol=1e-6)
        np.testing.assert_allclose(out.other, out.x * 2, rtol=1e-12)  # every lat/lon variable


def test_regrid_file_without_lat_lon_variables_is_an_error(tmp_path):
    xr.Dataset({"co2": ("time", [400.0, 401.0])}).to_netcdf(tmp_path / "native.nc")
    with pytest.raises(ValueError, match=r"native.nc: no variable on lat/lon to regrid"):
        regrid.regrid_file(
            tmp_path / "native.nc", tmp_path / "o.nc", standard_grid("0p25deg", BOX), "conservative"
        )
    assert not (tmp_path / "o.nc").exists()


def test_regrid_file_from_geotiff_and_land_cover(tmp_path, rng):
    tif = tmp_path / "canopy_height.tif"
    write_geotiff(tif, "EPSG:4326")
    grid = Grid.regular("0p25deg", 0.25, -110.0, -108.5, 38.0, 39.0, anchor=0.0)
    regrid.regrid_file(tif, tmp_path / "h.nc", grid, "p95_then_max")
    with xr.open_dataset(tmp_path / "h.nc") as out:
        assert (
            float(out.canopy_height.max()) == 6.0 and out.attrs["regrid_method"] == "p95_then_max"
        )
    source = cells(0.05)
    land = on(source, rng.integers(0, 17, source.shape).astype(np.uint8), name="lc").to_dataset()
    land.to_netcdf(tmp_path / "lc.nc")
    regrid.regrid_file(
        tmp_path / "lc.nc", tmp_path / "pft.nc", standard_grid("0p25deg", BOX), "class_fractions"
    )
    with xr.open_dataset(tmp_path / "pft.nc") as out:
        np.testing.assert_allclose(out.pft_fraction.sum("pft"), 1.0, rtol=1e-12)
        assert out.land_fraction.attrs["units"] == "1"


def test_failed_regrid_leaves_no_output(tmp_path, rng):
    source = cells(0.125)
    bad = on(source, np.full(source.shape, 99.0), name="lc").to_dataset()
    bad.to_netcdf(tmp_path / "lc.nc")
    with pytest.raises(ValueError, match="value 99 is not an IGBP class"):
        regrid.regrid_file(
            tmp_path / "lc.nc",
            tmp_path / "out.nc",
            standard_grid("0p25deg", BOX),
            "class_fractions",
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lc.nc"]


def test_write_netcdf_removes_its_temporary_file_on_failure(tmp_path):
    dataset = xr.Dataset({"x": ("lat", [1.0])}, coords={"lat": [0.0]})
    dataset.attrs["bad"] = {"a": 1}  # netCDF cannot store a dict attribute
    with pytest.raises(TypeError):
        io.write_netcdf(dataset, tmp_path / "out.nc")
    assert list(tmp_path.iterdir()) == []


def test_unknown_method_is_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"unknown regrid method 'bilinear'"):
        regrid.regrid_file(
            tmp_path / "a.nc",
            tmp_path / "b.nc",
            standard_grid("0p25deg", BOX),
            "bilinear",  # type: ignore[arg-type]
        )


def test_assignment_uses_cf_bounds_of_a_single_coarse_row(tmp_path):
    """One 4 x 5 degree row (36-40N): no spacing to infer edges from, the file's bounds decide."""
    lat, lon = np.array([38.0]), np.array([-107.5, -102.5])
    ds = xr.Dataset(
        {"nbe": (("time", "lat", "lon"), np.array([[[1.0, 2.0]]]))},
        coords={
            "lat": ("lat", lat, {"bounds": "lat_bnds"}),
            "lon": ("lon", lon, {"bounds": "lon_bnds"}),
            "lat_bnds": (("lat", "bnds"), [[36.0, 40.0]]),
            "lon_bnds": (("lon", "bnds"), [[-110.0, -105.0], [-105.0, -100.0]]),
        },
    )
    ds.to_netcdf(tmp_path / "nbe.nc")
    grid = Grid.regular("0p25deg", 0.25, -106.0, -104.0, 38.0, 39.0, anchor=0.0)
    regrid.regrid_file(tmp_path / "nbe.nc", tmp_path / "out.nc", grid, "assign_to_cells")
    with xr.open_dataset(tmp_path / "out.nc") as out:
        np.testing.assert_array_equal(out.nbe.isel(time=0, lat=0).values, [1.0] * 4 + [2.0] * 4)
