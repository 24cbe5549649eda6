"""FLUXNET16: packaged data, the site driver, folds, per-site calibration, metrics and tables."""

from __future__ import annotations

import shutil

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hybridland import config as study_config
from hybridland import contract
from hybridland.model import loss, parameters
from hybridland.studies import fluxnet
from hybridland.training import batches, evaluate, train


@pytest.fixture(scope="module")
def monthly() -> xr.Dataset:
    return fluxnet.read_monthly()


@pytest.fixture(scope="module")
def sites(monthly) -> xr.Dataset:
    return fluxnet.assemble(monthly, 0.5)


def test_packaged_data_reads_and_checksums_match(monthly, tmp_path):
    fluxnet.verify_checksums()
    assert monthly.sizes["site"] == 16 and "gpp_n_valid" in monthly
    for name in ("README.md", "LICENSE-DifferLand-MIT.txt", "SHA256SUMS"):
        assert (fluxnet.DATA / name).is_file(), name
    copy = tmp_path / "fluxnet16"
    shutil.copytree(fluxnet.DATA, copy)
    data = bytearray((copy / fluxnet.MONTHLY).read_bytes())
    data[-100] ^= 0xFF
    (copy / fluxnet.MONTHLY).write_bytes(bytes(data))
    with pytest.raises(fluxnet.FluxnetError, match="fluxnet16_monthly.nc"):
        fluxnet.verify_checksums(copy)


def test_driver_contract(sites, monthly):
    assert (
        sites.sizes["cell"] == 16 and sites.sizes["time"] == 108 and sites.attrs["grid"] == "sites"
    )
    pft = np.stack([sites[p].values for p in contract.PFT])
    np.testing.assert_array_equal(pft.sum(axis=0), 1.0)
    hai, how = (int(np.flatnonzero(sites.site.values == s)[0]) for s in ("DE-Hai", "AU-How"))
    assert (
        sites.DBF.values[hai] == 1 and sites.SAV.values[how] == 1
    )  # woody savanna is SAV, as regrid maps it
    assert (
        sites.MAT.attrs["units"] == "degC"
        and sites.MAP.attrs["units"] == "mm yr-1"
        and sites.elevation.attrs["units"] == "m"
    )
    assert (
        sites.gpp_ec.attrs["units"] == "g m-2 d-1"
        and sites.rad.attrs["units"] == "MJ m-2 d-1"
        and sites.co2.dims == ("cell", "time")
    )
    # first 5 years train, last 4 test, the test years start at the table's test_start
    np.testing.assert_array_equal(sites.test_month.values.sum(axis=1), 48)
    assert not sites.test_month.values[:, :60].any()
    first_test = sites.date.values[:, 60]
    np.testing.assert_array_equal(first_test, monthly.test_start.values)
    # each site its own calendar: 365 or 366 days per year, day of year restarts each January
    yearly = sites.delta_t.values.reshape(16, 9, 12).sum(axis=2)
    assert set(np.unique(yearly)) == {365.0, 366.0}
    assert np.all(sites.doy.values[:, ::12] == 16.0)
    for name in (
        "t_min",
        "t_max",
        "rad",
        "vpd",
        "precip",
        "co2",
        "days",
        "doy",
        "delta_t",
        "t_mean",
        "p_mean",
    ):
        assert np.isfinite(sites[name].values).all(), name
    assert int(sites.patch_test.sum()) == 0 and np.array_equal(
        sites.patch.values, sites.patch_id.values
    )


def test_valid_day_threshold_masks_months(monthly):
    loose, strict = fluxnet.assemble(monthly, 0.5), fluxnet.assemble(monthly, 0.9)
    assert np.isfinite(strict.gpp_ec.values).sum() < np.isfinite(loose.gpp_ec.values).sum()
    index = fluxnet.record_months(monthly)
    n_valid = np.take_along_axis(monthly.gpp_n_valid.values, index, axis=1)
    days = monthly.days_in_month.values[index]
    assert not np.isfinite(strict.gpp_ec.values[n_valid < 0.9 * days]).any()


def test_training_never_sees_test_months(sites):
    obs = batches.observations(sites)
    held_out = sites.test_month.values.T
    for name in ("gpp_ec", "reco_ec", "et_ec", "lai", "nbe"):
        _, mask = obs[name]
        assert not mask[held_out].any(), name
        assert mask[~held_out].max() > 1.0  # uncertainty weights enter the mask
    weight = fluxnet.uncertainty_weight(
        np.array([1.0, 1.0, 1.0, np.nan]), np.array([1.0, 2.0, np.nan, 1.0])
    )
    np.testing.assert_allclose(weight, [1.6, 0.4, 1.0, 1.0])  # 1/unc^2 = (1, 1/4), median 5/8


@pytest.mark.parametrize("scheme", fluxnet.SCHEMES)
def test_folds_keep_held_out_sites_out_of_training(sites, scheme):
    folds = fluxnet.folds(sites, scheme)
    held = np.stack(list(folds.values()))
    np.testing.assert_array_equal(held.sum(axis=0), 1)  # every site held out exactly once
    assert len(folds) == (4 if scheme == "leave_cluster_out" else 16)
    runs = fluxnet.fold_runs(sites, [scheme], [0, 1])
    training = fluxnet.training_runs(sites, "PFT", runs)
    seeds = [train.member_seed(1, r.label, r.member) for r in training]
    position = {int(p): i for i, p in enumerate(sites.patch_id.values)}
    for epoch in range(3):
        order = train.run_orders(training, seeds, [epoch] * len(runs), 4, position)
        for run, o in zip(runs, order):
            assert not np.isin(o, np.flatnonzero(run.held_out)).any()
            assert set(np.unique(o)) == set(np.flatnonzero(~run.held_out))
    with pytest.raises(AssertionError):
        fluxnet.training_cells(np.ones(16, bool))


def test_metric_formulas_against_hand_computed_numbers():
    obs, sim = np.array([1.0, 2.0, 3.0, 4.0, np.nan]), np.array([1.0, 2.0, 3.0, 5.0, 7.0])
    scores = fluxnet.site_scores(obs, sim)
    assert scores["nse"] == pytest.approx(1 - 1 / 5)
    assert scores["r"] == pytest.approx(6.5 / np.sqrt(5 * 8.75))
    assert scores["rmse"] == pytest.approx(0.5)
    assert np.isnan(fluxnet.site_scores(obs[:2], sim[:2])["rmse"])


def fake_predictions(sites: xr.Dataset, setup: str, offset: float) -> xr.Dataset:
    values = {
        t: (("scheme", "cell", "time"), np.stack([sites[t].values + offset] * 2))
        for t in fluxnet.MONTHLY_TARGETS
    }
    return xr.Dataset(values, coords={"scheme": list(fluxnet.SCHEMES)}, attrs={"setup": setup})


def test_heldout_tables(sites):
    table = fluxnet.heldout_table(
        sites, [fake_predictions(sites, "PFT", 0.0), fake_predictions(sites, "CLIM", 1.0)]
    )
    assert tuple(table.columns) == fluxnet.HELDOUT_COLUMNS
    assert len(table) == 2 * 2 * 16 * 5 and set(table.scheme) == set(fluxnet.SCHEMES)
    perfect = table[table.setup == "PFT"]
    np.testing.assert_allclose(perfect[["nse", "r"]], 1.0) and np.testing.assert_allclose(
        perfect.rmse, 0.0, atol=1e-6
    )
    np.testing.assert_allclose(table[table.setup == "CLIM"].rmse, 1.0, rtol=1e-5)
    med = fluxnet.medians(table)
    assert tuple(med.columns) == fluxnet.MEDIAN_COLUMNS and (med.sites == 16).all()
    metrics = fluxnet.pooled_metrics(sites, [fake_predictions(sites, "PFT", 0.0)])
    assert tuple(metrics.columns) == evaluate.METRIC_COLUMNS
    assert (
        set(metrics.split) == {"test"}
        and set(metrics.member) == {"ensemble"}
        and set(metrics.grid) == {"sites"}
    )
    np.testing.assert_allclose(metrics.r2_score, 1.0)


def synthetic_sites(sites: xr.Dataset, truth: dict[str, np.ndarray]) -> xr.Dataset:
    """Two real sites whose targets are DALEC993 run with known parameters, 3 years."""
    small = sites.isel(cell=[5, 7], patch_id=[5, 7], time=slice(0, 36)).copy()
    small = small.assign_coords(cell=[0, 1], patch_id=[0, 1]).assign(
        patch=("cell", np.array([0, 1], np.int32))
    )
    small["test_month"] = (("cell", "time"), np.arange(36)[None, :].repeat(2, 0) >= 24)
    sim = fluxnet.simulate_targets(small, truth)
    for t, v in sim.items():
        dims = ("patch_id", "time") if t == "nbe" else ("cell", "time")
        small[t] = (dims, v.astype(np.float32))
        small[f"{t}_weight"] = (("cell", "time"), np.ones_like(v, np.float32))
    return small


def test_per_site_calibration_recovers_a_synthetic_site(sites):
    rng = np.random.default_rng(3)
    raw = {
        g: jnp.asarray(rng.normal(0.0, 0.4, (2, len(parameters.group_names(g)))), jnp.float32)
        for g in parameters.GROUPS
    }
    truth = {k: np.asarray(v) for k, v in fluxnet.raw_to_physical(raw).items()}
    small = synthetic_sites(sites, truth)
    config = loss.LossConfig.from_mapping(
        {"gpp_ec": 0.1, "reco_ec": 0.2, "nbe": 0.3, "et_ec": 0.7, "lai": 0.4}
    )
    start = fluxnet.raw_to_physical({g: jnp.zeros_like(v) for g, v in raw.items()})
    before = fluxnet.simulate_targets(small, {k: np.asarray(v) for k, v in start.items()})
    params, final, history = fluxnet.calibrate_sites(
        small, config, fluxnet.CalibrationOptions(300, 0.05), chunk=150
    )
    after = fluxnet.simulate_targets(small, params)
    assert np.all(np.isfinite(final)) and history[-1] < history[0]
    test = small.test_month.values
    for t in ("gpp_ec", "lai", "et_ec"):
        obs = np.where(test, small[t].values, np.nan)
        gain = [
            fluxnet.site_scores(obs[c], after[t][c])["rmse"]
            < 0.5 * fluxnet.site_scores(obs[c], before[t][c])["rmse"]
            for c in range(2)
        ]
        assert all(gain), t
        assert (
            np.nanmedian([fluxnet.site_scores(obs[c], after[t][c])["nse"] for c in range(2)]) > 0.8
        ), t


def test_crossval_trains_every_fold_and_predicts_held_out_sites(sites, tmp_path):
    training = {
        "epochs": 2,
        "learning_rate": 0.003,
        "patches_per_step": 4,
        "dev_fraction": 0.1,
        "checkpoint_every": 10,
        "max_restarts": 0,
        "width": 4,
        "depth": 1,
    }
    section = {
        "reduction": "mean",
        "coarse_min_valid": 0.8,
        "weights": {"gpp_ec": 0.1, "lai": 0.4, "nbe": 0.3},
    }
    options = train.TrainOptions.from_config(training, section)
    path = tmp_path / "sites.nc"
    sites.to_netcdf(path)
    out, report = tmp_path / "CLIM.nc", tmp_path / "CLIM.json"
    fluxnet.crossval_files(path, "CLIM", ["leave_cluster_out"], [0, 1], 1, 7, options, out, report)
    with xr.open_dataset(out) as pred:
        assert (
            pred.gpp_ec.dims == ("scheme", "cell", "time") and np.isfinite(pred.gpp_ec.values).all()
        )
        assert (pred.members.values == 1).all() and pred.attrs["setup"] == "CLIM"
    rows = pd.read_json(report).runs
    assert len(rows) == 4 * 2 and sum(r["kept"] for r in rows) == 4


def test_config_accepts_sites_only_for_fluxnet16():
    import yaml

    root = fluxnet.DATA.parents[3]
    base = yaml.safe_load((root / "config/config.yaml").read_text())
    with pytest.raises(study_config.ConfigError, match="sites"):
        study_config.check(base | {"grids": ["sites"]})
    overlay = yaml.safe_load((root / "config/studies/fluxnet16.yaml").read_text())
    config = base | overlay | {"setups": base["setups"] | overlay["setups"]}
    assert study_config.setups_per_grid(config) == {
        "sites": ["CONTROL", "PFT", "CLIM", "PFT+CLIM", "LATLON"]
    }
    with pytest.raises(study_config.ConfigError, match="grids"):
        study_config.check(config | {"grids": ["sites", "0p25deg"]})
