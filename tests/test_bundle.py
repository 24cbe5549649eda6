"""The DifferLand bundle: a tiny bundle in the published layout, served behind a fake Zenodo
record."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from test_config import default, overlay
from test_download import Reply, closed_port, md5, server  # noqa: F401  (server is a fixture)
from test_workflow import ROOT, scheduled, snakemake

from hybridland import config as study_config
from hybridland import contract
from hybridland.data import bundle, driver
from hybridland.data.download import DownloadError
from hybridland.data.grids import Grid
from hybridland.training import jobs, train

RECORD = "13984226"
# The bundle's window: 0.25-degree cells, latitude descending as in the published file.
LAT = np.arange(42.875, 33.0, -0.25)  # 40 rows
LON = np.arange(-115.875, -99.0, 0.25)  # 68 columns
BOX = {
    "west": -115.0,
    "east": -100.0,
    "south": 34.0,
    "north": 42.0,
}  # 2 x 3 patches of 4 x 5 degrees
OPTIONS = driver.DriverOptions(
    patch_deg=(4.0, 5.0), min_patch_fraction=0.1, land_threshold=0.5, test_fraction=0.1, delta_t=30
)
PERIOD = {"first_year": 2002, "last_year": 2002}
TIME = pd.date_range("2001-01-01", periods=24, freq="MS") + pd.Timedelta(days=14)
# Hand-picked cell (row, column of the bundle) with values in non-contract units.
CELL = (10, 20)  # lat 40.375, lon -110.875: lattice patch of 38-42 N, 115-110 W
WATER = (12, 30)  # era_valid False
FLAGLESS = (20, 5)  # assimilate_bulk_variable False, in the patch 34-38 N, 115-110 W


def grid(name: str = "0p25deg", resolution: float = 0.25) -> Grid:
    return Grid.regular(
        name, resolution, BOX["west"], BOX["east"], BOX["south"], BOX["north"], anchor=0.0
    )


def write_bundle(folder: Path, *, drop: str | None = None) -> dict[str, bytes]:
    """The five files of the record, in the published layout; returns name -> bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    shape, tshape = (LAT.size, LON.size), (TIME.size, LAT.size, LON.size)
    static = lambda v, units=None: (
        ("lat", "lon"),
        np.full(shape, v, np.float32) if np.isscalar(v) else v.astype(np.float32),
        {} if units is None else {"units": units},
    )
    monthly = lambda v, units=None: (
        ("time", "lat", "lon"),
        np.broadcast_to(np.float32(v), tshape).copy() if np.isscalar(v) else v.astype(np.float32),
        {} if units is None else {"units": units},
    )
    pft = np.zeros((10, *shape))
    pft[0], pft[1], pft[6] = 50.0, 30.0, 20.0  # percent, no units attribute: NF, DBF, GRA
    variables = {
        **{p: static(pft[i]) for i, p in enumerate(contract.PFT)},
        "MAT": static(288.15, "K"),
        "MAP": static(730.44, "mm yr-1"),
        "elevation": static(rng.uniform(1000, 3000, shape), "m"),
        "canopy_height": static(rng.uniform(0, 30, shape), "m"),
        "tree_age_000_filled": static(rng.uniform(0, 200, shape), "years"),
        **{s: static(rng.uniform(10, 40, shape), "%") for s in ("SAND", "SILT", "CLAY", "GRAVEL")},
        "BULK_DEN": static(1.3, "kg dm-3"),
        "T_min": monthly(283.15, "K"),
        "T_max": monthly(20.0, "degC"),
        "SOLR": monthly(100.0, "W m-2"),
        "VPD": monthly(1.2, "kPa"),
        "PREC": monthly(2e-5, "kg m-2 s-1"),
        "BURNED_AREA": monthly(0.0),
        "DAYS": monthly(0.0),
        "DOY": monthly(0.0),
        "LAT": static(np.repeat(LAT[:, None], LON.size, 1)),
        "LAI": monthly(rng.uniform(0, 3, tshape), "m2 m-2"),
        "LCSPP": monthly(rng.uniform(0, 0.5, tshape)),
        "ET": monthly(1.5, "mm d-1"),
        "NBE": monthly(rng.normal(0, 1, tshape), "gC m-2 d-1"),
        "LWE_normalized": monthly(1.5, "cm"),
        "agb_yan": monthly(1000.0, "gC m-2"),
        "bgb_yan": monthly(250.0, "gC m-2"),
        "initial_som": static(5000.0, "gC m-2"),
        "GFED_FIRE_EMISSION": monthly(0.0),
        "gpp_fluxnet": monthly(np.nan),
        "reco_fluxnet": monthly(np.nan),
        "et_fluxnet": monthly(np.nan),
        "gpp_fluxnet_weight": monthly(np.nan),
    }
    variables["gpp_fluxnet"][1][:, CELL[0], CELL[1]] = 4.0
    variables["gpp_fluxnet_weight"][1][:, CELL[0], CELL[1]] = 0.6
    variables["elevation"][1][CELL[0] + 1, CELL[1]] = (
        np.nan
    )  # a land cell without a predictor: dropped
    if drop:
        del variables[drop]
    coords = {"time": TIME, "lat": LAT, "lon": LON}
    xr.Dataset(variables, coords=coords).to_netcdf(folder / bundle.FILES["driver"])

    lat2, lon2 = np.meshgrid(LAT, LON, indexing="ij")
    inside = (
        (lat2 > BOX["south"]) & (lat2 < BOX["north"]) & (lon2 > BOX["west"]) & (lon2 < BOX["east"])
    )
    valid = inside.copy()
    valid[WATER] = False
    lattice = patch_of(lat2, lon2)
    test_patch = patch_of(np.array(36.0), np.array(-102.0))  # 34-38 N, 105-100 W
    runs = []
    for run in range(3):  # per run a shuffled label per patch, negative for the test patch
        ids = np.unique(lattice[inside])
        shuffled = dict(zip(ids, np.random.default_rng(run).permutation(ids.size) + 1))
        labels = np.full(shape, np.nan)
        labels[inside] = [shuffled[k] for k in lattice[inside]]
        labels[inside & (lattice == test_patch)] = -1.0
        runs.append(labels)
    flags = np.ones(shape, bool)
    flags[FLAGLESS] = False
    # The masks need not share the driver file's axis order or names: read by their own coordinates.
    valid_file = xr.Dataset({"era_valid": (("lat", "lon"), valid)}, coords={"lat": LAT, "lon": LON})
    valid_file.isel(lat=slice(None, None, -1)).to_netcdf(folder / bundle.FILES["valid"])
    xr.Dataset(
        {"run_simulation_idx": (("time", "lat", "lon"), np.array(runs))},
        coords={"lat": LAT, "lon": LON},
    ).to_netcdf(folder / bundle.FILES["split"])
    xr.Dataset(
        {"assimilate_bulk_variable": (("latitude", "longitude"), flags)},
        coords={"latitude": LAT, "longitude": LON},
    ).to_netcdf(folder / bundle.FILES["assimilate"])
    months = pd.date_range("2001-01-01", "2023-12-01", freq="MS")
    co2 = pd.DataFrame(
        {
            "year": months.year,
            "month": months.month,
            "decimal": months.year + (months.month - 0.5) / 12,
            "average": 370.0 + np.arange(months.size) * 0.2,
        }
    )
    co2.to_csv(folder / bundle.FILES["co2"], index=False)
    return {name: (folder / name).read_bytes() for name in bundle.FILES.values()}


def patch_of(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    return (np.floor((lat + 90) / 4) * 72 + np.floor((lon + 180) / 5)).astype(int)


def serve_record(server, files: dict[str, bytes]) -> None:  # noqa: F811
    entries = [
        {
            "key": name,
            "size": len(data),
            "checksum": md5(data),
            "links": {"self": server.serve(f"/files/{name}", Reply(data))},
        }
        for name, data in files.items()
    ]
    record = {"id": int(RECORD), "files": entries, "metadata": {"license": {"id": "cc-by-4.0"}}}
    server.serve(f"/api/records/{RECORD}", Reply(json.dumps(record).encode()))


@pytest.fixture
def downloaded(server, tmp_path) -> Path:  # noqa: F811
    """The bundle downloaded from the fake record; returns the manifest."""
    serve_record(server, write_bundle(tmp_path / "published"))
    manifest = tmp_path / "raw" / "differland_global.json"
    bundle.download_bundle(
        tmp_path / "raw" / "differland_global", manifest, api_base=server.base + "/api", retries=0
    )
    return manifest


def adapted(manifest: Path, target: Grid | None = None) -> xr.Dataset:
    out = manifest.parent.parent / "driver.nc"
    bundle.adapt_bundle_file(manifest, out, target or grid(), OPTIONS, PERIOD, seed=1)
    return xr.open_dataset(out).load()


def test_download_verifies_md5_and_lists_the_files(downloaded):
    listing = json.loads(downloaded.read_text())
    assert listing["folder"] == "differland_global" and listing["zenodo_record"] == RECORD
    assert sorted(listing["files"]) == sorted(bundle.FILES.values())
    folder = downloaded.parent / "differland_global"
    assert (folder / f"zenodo-{RECORD}.json").is_file()  # kept, so the folder verifies offline


def test_driver_contract_and_converted_values(downloaded):
    d = adapted(downloaded)
    assert d.attrs["grid"] == "0p25deg" and d.land_mask.shape == (32, 60)
    assert d.sizes["time"] == 12 and pd.DatetimeIndex(d.time)[0].year == 2002
    # 1920 cells in the box, less the water cell and the cell without elevation.
    assert d.sizes["cell"] == 32 * 60 - 2 and d.sizes["patch_id"] == 6
    water = (d.lat == LAT[WATER[0]]) & (d.lon == LON[WATER[1]])
    assert (
        not water.any() and not d.land_mask.values[35 - WATER[0], WATER[1] - 4]
    )  # grid: ascending, from 34 N, 115 W
    at = lambda name: float(
        d[name].where((d.lat == 40.375) & (d.lon == -110.875), drop=True).values.ravel()[0]
    )
    assert (
        at("NF") == pytest.approx(0.5)
        and at("DBF") == pytest.approx(0.3)
        and at("GRA") == pytest.approx(0.2)
    )
    assert (
        d.NF.attrs["units"] == "1"
        and d.MAT.attrs["units"] == "degC"
        and d.MAP.attrs["units"] == "mm yr-1"
    )
    assert at("MAT") == pytest.approx(15.0) and at("t_mean") == pytest.approx(15.0)
    assert at("p_mean") == pytest.approx(2.0)  # 730.44 mm yr-1 / 365.22
    assert float(d.t_min[0, 0]) == pytest.approx(10.0)  # 283.15 K
    assert float(d.rad[0, 0]) == pytest.approx(8.64)  # 100 W m-2
    assert float(d.vpd[0, 0]) == pytest.approx(12.0)  # 1.2 kPa
    assert float(d.precip[0, 0]) == pytest.approx(1.728)  # 2e-5 kg m-2 s-1
    assert float(d.biomass[0, 0]) == pytest.approx(1250.0)  # agb + bgb
    assert float(d.som[0]) == pytest.approx(5000.0) and d.som.attrs["units"] == "gC m-2"
    assert float(d.ewt[0, 0]) == pytest.approx(15.0) and d.ewt.attrs["units"] == "mm"  # 1.5 cm
    assert at("ec_weight") == pytest.approx(0.6) and int((d.ec_weight > 0).sum()) == 1
    assert np.isfinite(d.gpp_ec).sum() == 12
    np.testing.assert_allclose(d.co2.values, 370.0 + (12 + np.arange(12)) * 0.2)
    np.testing.assert_allclose(d.delta_t.values, 30.0)
    assert set(np.unique(d.patch.values)) == set(d.patch_id.values)
    test_patch = patch_of(np.array(36.0), np.array(-102.0))
    assert d.patch_test.sel(patch_id=test_patch) and int(d.patch_test.sum()) == 1
    assert bool(d.test.values[d.patch.values == test_patch].all()) and int(d.test.sum()) == 320
    train = ~d.test.values
    np.testing.assert_allclose(
        d.predictor_std.sel(predictor="elevation"), d.elevation.values[train].std(), rtol=1e-5
    )


def test_nbe_counts_only_flagged_cells(downloaded, tmp_path):
    d = adapted(downloaded)
    with xr.open_dataset(tmp_path / "published" / bundle.FILES["driver"]) as raw:
        nbe = raw.NBE.sel(time=slice("2002-01-01", "2002-12-31")).values  # (time, lat, lon)
    lat2, lon2 = np.meshgrid(LAT, LON, indexing="ij")
    block = patch_of(lat2, lon2) == patch_of(np.array(36.0), np.array(-112.0))
    block[FLAGLESS] = False  # the one cell outside the assimilation flags
    expected = nbe[:, block].mean(axis=1)
    np.testing.assert_allclose(
        d.nbe.sel(patch_id=patch_of(np.array(36.0), np.array(-112.0))), expected, rtol=1e-5
    )


def test_eighth_degree_driver_takes_the_containing_bundle_cell(downloaded):
    coarse, fine = adapted(downloaded), adapted(downloaded, grid("0p125deg", 0.125))
    assert fine.sizes["cell"] == 4 * coarse.sizes["cell"] and fine.land_mask.shape == (64, 120)
    assert set(fine.patch_id.values) == set(coarse.patch_id.values)
    child = fine.isel(cell=int(np.flatnonzero((fine.lat == 40.3125) & (fine.lon == -110.9375))[0]))
    parent = coarse.isel(
        cell=int(np.flatnonzero((coarse.lat == 40.375) & (coarse.lon == -110.875))[0])
    )
    for name in ("NF", "elevation", "forest_age", "MAT", "lai", "t_min"):
        np.testing.assert_array_equal(child[name].values, parent[name].values)


def test_missing_variable_names_file_and_lists_the_expected_ones(server, tmp_path):  # noqa: F811
    serve_record(server, write_bundle(tmp_path / "published", drop="tree_age_000_filled"))
    manifest = tmp_path / "raw" / "differland_global.json"
    bundle.download_bundle(
        tmp_path / "raw" / "differland_global", manifest, api_base=server.base + "/api", retries=0
    )
    with pytest.raises(bundle.BundleError) as error:
        adapted(manifest)
    expected = sorted({v for names in bundle.VARIABLES.values() for v in names})
    assert str(error.value) == (
        "differland_global_driver_v6.nc lacks ['tree_age_000_filled'] of the variables the "
        f"adapter reads: {expected}"
    )


def test_unknown_variable_and_unit_are_named():
    with pytest.raises(bundle.BundleError) as error:
        bundle.Layout.from_config({"variables": {"forest_ages": "tree_age"}})
    assert str(error.value) == (
        "bundle.variables names ['forest_ages'], which the adapter does not know; expected "
        f"some of {sorted(bundle.VARIABLES)}"
    )
    with pytest.raises(bundle.BundleError) as error:
        bundle.convert(
            "lai",
            np.ones(2),
            "furlongs",
            "differland_global_driver_v6.nc: variable 'LAI' (driver 'lai')",
        )
    assert str(error.value) == (
        "differland_global_driver_v6.nc: variable 'LAI' (driver 'lai') has units 'furlongs'; "
        "expected 'm2 m-2' or one of ['', '1', 'm2 m-2', 'm2/m2']"
    )


def test_a_renamed_variable_is_read_through_the_config(server, tmp_path):  # noqa: F811
    folder = tmp_path / "raw" / "differland_global"
    write_bundle(folder)
    with xr.open_dataset(folder / bundle.FILES["driver"]) as data:
        renamed = data.load().rename({"tree_age_000_filled": "forest_age_v2"})
    renamed.to_netcdf(folder / bundle.FILES["driver"])
    layout = bundle.Layout.from_config({"variables": {"forest_age": "forest_age_v2"}})
    paths = {role: folder / name for role, name in bundle.FILES.items()}
    d = bundle.adapt(paths, grid(), OPTIONS, PERIOD, seed=1, layout=layout)
    assert d.forest_age.attrs["units"] == "years" and np.isfinite(d.forest_age).all()


def test_offline_download_says_where_to_put_the_files(tmp_path):
    folder, manifest = (
        tmp_path / "raw" / "differland_global",
        tmp_path / "raw" / "differland_global.json",
    )
    base = f"http://127.0.0.1:{closed_port()}/api"
    with pytest.raises(DownloadError) as error:
        bundle.download_bundle(folder, manifest, api_base=base, retries=0)
    message = str(error.value)
    assert message.startswith(
        f"differland_global: Zenodo record {RECORD}: cannot reach {base}/records/{RECORD} "
        "after 1 attempts ("
    )
    assert message.endswith(
        "Without network access, save that JSON metadata as "
        f"{folder.absolute()}/zenodo-{RECORD}.json and place "
        "the record's files beside it; they are then verified against the md5 checksums it lists."
    )
    assert not manifest.exists()


def test_patches_that_are_not_the_lattice_are_refused():
    label = np.array([1.0, 1.0, 2.0, 2.0])
    with pytest.raises(
        bundle.BundleError,
        match=re.escape("split.nc: label 1 lies in lattice patches 10, 11: the bundle's patches"),
    ):
        bundle.test_set(label, np.array([10, 11, 12, 12]), Path("split.nc"))
    with pytest.raises(
        bundle.BundleError, match=re.escape("split.nc: lattice patch 12 holds labels 2, 3: ")
    ):
        bundle.test_set(np.array([1.0, 2.0, 3.0]), np.array([10, 12, 12]), Path("split.nc"))


def test_dry_run_lists_the_paper_scale_jobs():
    jobs = scheduled(snakemake(ROOT, "-n", "--configfile", "config/studies/differland_global.yaml"))
    factorial = 17 * 20
    identifiability = 2 * (50 - 20)  # its ensembles of 50 reuse the factorial's members 00..19
    assert jobs == {
        "download_bundle": 1,
        "adapt_bundle": 1,
        "train_member": factorial + identifiability,
        "select_members": 17,
        "evaluate_setup": 17,
        "gather_metrics": 1,
        "select_identifiability": 2,
        "identifiability": 1,
        "partition": 1,
        "pca": 1,
        "shap": 2,
        "gather_shap": 1,
        "baseline_lstm": 1,  # the per-cell LSTM on the global grid
        "comparison": 1,
        "all": 1,
    }


def test_a_member_trains_on_the_bundle_driver_with_the_study_loss(downloaded, tmp_path):
    study = yaml.safe_load((ROOT / "config/studies/differland_global.yaml").read_text())
    training = {
        "epochs": 1,
        "learning_rate": 5e-4,
        "patches_per_step": 1,
        "dev_fraction": 0.2,
        "checkpoint_every": 1,
        "max_restarts": 0,
        "width": 8,
        "depth": 2,
    }
    options = train.TrainOptions.from_config(training, study["loss"])
    out = tmp_path / "member"
    bundle.adapt_bundle_file(downloaded, tmp_path / "driver.nc", grid(), OPTIONS, PERIOD, seed=1)
    jobs.train_files(
        tmp_path / "driver.nc",
        [["PFT+CLIM", 0]],
        1,
        options,
        [out / "weights.npz"],
        [out / "member.json"],
    )
    info = json.loads((out / "member.json").read_text())
    assert np.isfinite(info["final_train_loss"]) and len(info["train_patches"]) == 4


def test_config_names_a_period_outside_the_bundle_and_an_unknown_bundle_key():
    study = overlay(
        default(), yaml.safe_load((ROOT / "config/studies/differland_global.yaml").read_text())
    )
    study_config.check(study)
    with pytest.raises(study_config.ConfigError) as error:
        study_config.check(overlay(study, {"period": {"first_year": 2000}}))
    assert (
        str(error.value)
        == "period (2000-2023) leaves the years of the differland_global bundle (2001-2023)"
    )
    with pytest.raises(
        study_config.ConfigError, match=re.escape("bundle.files names ['mask'], which the adapter")
    ):
        study_config.check(overlay(study, {"bundle": {"files": {"mask": "x.nc"}}}))
