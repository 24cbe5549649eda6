"""Evaluation: metric formulas, target comparisons, recovery, tables and the per-setup entry
point."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hybridland.model import loss, parameters, targets
from hybridland.training import batches, evaluate, jobs, skill, train

N_TIME = 24
PATCH_CELLS = (4, 4, 4, 3, 4, 2)  # cells of each patch; the last patch is the test patch
GRID_LAT = np.array([38.125, 38.375, 38.625, 38.875])
GRID_LON = np.array([-108.875, -108.625, -108.375, -108.125, -107.875, -107.625])


def tiny_driver(seed: int = 0) -> xr.Dataset:
    """A hand-built driver: 21 cells in 6 patches on a 4 x 6 grid, two years, one site cell."""
    rng = np.random.default_rng(seed)
    patch = np.repeat(100 + np.arange(len(PATCH_CELLS)), PATCH_CELLS)
    n = patch.size
    flat = rng.permutation(GRID_LAT.size * GRID_LON.size)[:n]
    cell_y, cell_x = np.unravel_index(flat, (GRID_LAT.size, GRID_LON.size))
    land = np.zeros((GRID_LAT.size, GRID_LON.size), bool)
    land[cell_y, cell_x] = True
    time = pd.date_range("2010-01-01", periods=N_TIME, freq="MS") + pd.Timedelta(days=14)
    month = np.arange(N_TIME) % 12
    season = np.sin(2 * np.pi * (month - 3) / 12)[None, :]  # (1, time)
    per_cell = lambda scale, spread: scale + spread * rng.random((n, 1))
    t_mean = per_cell(8.0, 4.0)
    t_air = t_mean + 10.0 * season
    lai = np.clip(per_cell(1.0, 1.0) * (1.3 + season), 0.05, None)
    lai[0, :5] = np.nan
    biomass = np.repeat(per_cell(3000.0, 2000.0) + rng.normal(0, 100, (n, 2)), 12, axis=1)
    ewt = np.cumsum(rng.normal(0, 5, (len(PATCH_CELLS), N_TIME)), axis=1)
    site = np.full((n, N_TIME), np.nan)
    site[2] = 3.0 + 2.0 * season[0]
    data = {
        "lat": ("cell", GRID_LAT[cell_y]),
        "lon": ("cell", GRID_LON[cell_x]),
        "cell_y": ("cell", cell_y.astype(np.int32)),
        "cell_x": ("cell", cell_x.astype(np.int32)),
        "patch": ("cell", patch.astype(np.int32)),
        "test": ("cell", patch == patch.max()),
        "patch_test": ("patch_id", np.arange(len(PATCH_CELLS)) == len(PATCH_CELLS) - 1),
        "MAT": ("cell", t_mean[:, 0].astype(np.float32)),
        "MAP": ("cell", (400.0 + 300.0 * rng.random(n)).astype(np.float32)),
        "elevation": ("cell", (1500.0 + 1000.0 * rng.random(n)).astype(np.float32)),
        "t_min": (("cell", "time"), (t_air - 6.0).astype(np.float32)),
        "t_max": (("cell", "time"), (t_air + 6.0).astype(np.float32)),
        "rad": (("cell", "time"), (18.0 + 8.0 * season + 0 * t_air).astype(np.float32)),
        "vpd": (
            ("cell", "time"),
            np.clip(8.0 + 6.0 * season + 0 * t_air, 0.5, None).astype(np.float32),
        ),
        "precip": (("cell", "time"), (1.0 + rng.random((n, N_TIME))).astype(np.float32)),
        "burned_area": (("cell", "time"), np.zeros((n, N_TIME), np.float32)),
        "co2": ("time", np.full(N_TIME, 390.0)),
        "days": ("time", (time - pd.Timestamp("2000-01-01")).days.to_numpy() + 0.0),
        "doy": ("time", time.day_of_year.to_numpy() + 0.0),
        "delta_t": ("time", np.full(N_TIME, 30.0)),
        "t_mean": ("cell", t_mean[:, 0]),
        "p_mean": ("cell", np.full(n, 1.5)),
        "lai": (("cell", "time"), lai.astype(np.float32)),
        "sif": (("cell", "time"), (0.3 * lai).astype(np.float32)),
        "et": (("cell", "time"), (1.0 + lai).astype(np.float32)),
        "biomass": (("cell", "time"), biomass.astype(np.float32)),
        "som": ("cell", per_cell(8000.0, 4000.0)[:, 0].astype(np.float32)),
        "nbe": (
            ("patch_id", "time"),
            (0.2 * np.cos(2 * np.pi * month / 12) + 0 * ewt).astype(np.float32),
        ),
        "ewt": (("patch_id", "time"), (ewt - ewt.mean(axis=1, keepdims=True)).astype(np.float32)),
        "gpp_ec": (("cell", "time"), site.astype(np.float32)),
        "reco_ec": (("cell", "time"), (0.8 * site).astype(np.float32)),
        "et_ec": (("cell", "time"), (0.5 * site).astype(np.float32)),
        "ec_weight": ("cell", (np.arange(n) == 2).astype(np.float32)),
        "land_mask": (("y", "x"), land),
    }
    coords = {
        "time": time,
        "patch_id": (100 + np.arange(len(PATCH_CELLS))).astype(np.int32),
        "grid_lat": ("y", GRID_LAT),
        "grid_lon": ("x", GRID_LON),
    }
    return xr.Dataset(data, coords=coords, attrs={"grid": "tiny"})


def middle_parameters(n: int) -> dict[str, np.ndarray]:
    """Every parameter at the geometric middle of its range, on ``n`` cells."""
    return {p.name: np.full(n, np.sqrt(p.minimum * p.maximum)) for p in parameters.TABLE}


# ---- metrics


def test_metrics_match_hand_computed_values():
    obs, sim = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 1.5, 3.5, 3.5])
    # sum of squared errors 1.0, obs sum of squares about the mean 5.0
    assert skill.r2_score(obs, sim) == pytest.approx(1.0 - 1.0 / 5.0)
    # r = 4 / sqrt(5 * 4)
    assert skill.explained_variance(obs, sim) == pytest.approx(16.0 / 20.0)


def test_perfect_prediction_scores_one():
    obs = np.array([0.3, 1.2, 2.0, 0.7, 5.0])
    assert skill.r2_score(obs, obs) == pytest.approx(1.0)
    assert skill.explained_variance(obs, obs) == pytest.approx(1.0)


def test_constant_bias_lowers_nse_but_not_r2():
    obs = np.array([1.0, 2.0, 3.0, 4.0])
    assert skill.r2_score(obs, obs + 1.0) == pytest.approx(1.0 - 4.0 / 5.0)
    assert skill.explained_variance(obs, obs + 1.0) == pytest.approx(1.0)
    assert skill.explained_variance(obs, 3.0 * obs - 7.0) == pytest.approx(1.0)


def test_metrics_skip_non_finite_pairs():
    obs = np.array([1.0, np.nan, 2.0, 3.0, 4.0, 9.0])
    sim = np.array([1.5, 8.0, 1.5, 3.5, 3.5, np.inf])
    assert skill.r2_score(obs, sim) == pytest.approx(0.8)
    assert skill.explained_variance(obs, sim) == pytest.approx(0.8)


@pytest.mark.parametrize(
    "obs, sim",
    [
        ([1.0, 2.0], [1.0, 2.0]),  # fewer than 3 pairs
        ([1.0, np.nan, 2.0, 5.0], [1.0, 2.0, np.nan, 5.0]),  # 2 finite pairs
        ([0.1, 0.1, 0.1, 0.1], [0.1, 0.2, 0.3, 0.4]),  # no spread in obs
        ([], []),
    ],
)
def test_metrics_are_nan_without_enough_information(obs, sim):
    assert np.isnan(skill.r2_score(np.array(obs), np.array(sim)))
    assert np.isnan(skill.explained_variance(np.array(obs), np.array(sim)))


def test_explained_variance_is_nan_for_constant_simulation():
    obs = np.array([1.0, 2.0, 3.0, 4.0])
    assert np.isnan(skill.explained_variance(obs, np.full(4, 2.5)))
    assert skill.r2_score(obs, np.full(4, 2.5)) == pytest.approx(0.0)


def test_columnwise_scores_agree_with_scalar_metrics():
    rng = np.random.default_rng(3)
    obs, sim = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    obs[::4, 1] = np.nan
    obs[2:, 3] = np.nan  # two pairs left: NaN
    nse, r2, n = skill.columnwise_scores(obs, sim)
    for j in range(4):
        assert nse[j] == pytest.approx(skill.r2_score(obs[:, j], sim[:, j]), nan_ok=True)
        assert r2[j] == pytest.approx(skill.explained_variance(obs[:, j], sim[:, j]), nan_ok=True)
    assert n.tolist() == [30, 22, 30, 2] and np.isnan(nse[3])


# ---- target comparisons


def fake_sim(driver: xr.Dataset, rng: np.random.Generator) -> dict[str, np.ndarray]:
    shape = (driver.sizes["time"], driver.sizes["cell"])
    return {name: rng.random(shape) for name in evaluate.SIM_OUTPUTS}


def test_target_pairs_fine_targets_are_cell_months_of_the_mask():
    driver, rng = tiny_driver(), np.random.default_rng(1)
    sim = fake_sim(driver, rng)
    mask = driver.patch.values == 100  # cell 0 (5 months of LAI missing) and cells 1-3
    pairs = evaluate.target_pairs(driver, sim, mask)
    obs_lai, sim_lai = pairs["lai"]
    assert obs_lai.size == 4 * N_TIME - 5
    expected = sim["lai"][:, mask]
    assert np.array_equal(
        np.sort(sim_lai), np.sort(expected[np.isfinite(driver.lai.values[mask].T)])
    )
    assert pairs["sif"][0].size == 4 * N_TIME - 5 and pairs["et"][0].size == 4 * N_TIME - 5


def test_target_pairs_coarse_targets_are_patch_means():
    driver, rng = tiny_driver(), np.random.default_rng(2)
    sim = fake_sim(driver, rng)
    mask = np.isin(driver.patch.values, [101, 103])
    obs, model = evaluate.target_pairs(driver, sim, mask)["nbe"]
    cells = [driver.patch.values == p for p in (101, 103)]
    expected = np.stack([sim["nbe"][:, c].mean(axis=1) for c in cells], axis=1)  # (time, patch)
    assert np.allclose(model, expected.ravel(), rtol=1e-6)
    assert np.allclose(obs, driver.nbe.sel(patch_id=[101, 103]).values.T.ravel())


def test_target_pairs_ewt_is_the_patch_mean_of_cell_anomalies_over_observed_months():
    driver, rng = tiny_driver(), np.random.default_rng(3)
    driver["ewt"][2, :5] = np.nan  # patch 102
    sim = fake_sim(driver, rng)
    mask = driver.patch.values == 102
    obs, model = evaluate.target_pairs(driver, sim, mask)["ewt"]
    water = sim["next_water_pool"][5:, mask]
    anomaly = water - water.sum(axis=0) / (water.shape[0] + targets.ANOMALY_EPS)
    assert obs.size == N_TIME - 5
    assert np.allclose(model, anomaly.mean(axis=1), rtol=1e-6)
    assert np.allclose(obs, driver.ewt.values[2, 5:], rtol=1e-6)


def test_target_pairs_biomass_is_annual_and_som_is_static():
    driver, rng = tiny_driver(), np.random.default_rng(4)
    sim = fake_sim(driver, rng)
    mask = driver.patch.values == 104
    pairs = evaluate.target_pairs(driver, sim, mask)
    obs, model = pairs["biomass"]
    assert obs.size == 2 * int(mask.sum())  # one value per cell-year
    total = sum(sim[f"next_{p}_pool"][:, mask] for p in ("labile", "foliar", "root", "wood"))
    assert np.allclose(model, np.stack([total[:12].mean(axis=0), total[12:].mean(axis=0)]).ravel())
    assert np.allclose(obs, driver.biomass.values[mask][:, [0, 12]].T.ravel())
    obs_som, model_som = pairs["som"]
    assert np.allclose(obs_som, driver.som.values[mask])
    assert np.allclose(model_som, sim["next_som_pool"][:, mask].mean(axis=0))


def test_target_pairs_eddy_covariance_only_at_site_cells():
    driver, rng = tiny_driver(), np.random.default_rng(5)
    sim = fake_sim(driver, rng)
    with_site = evaluate.target_pairs(driver, sim, driver.patch.values == 100)
    assert with_site["gpp_ec"][0].size == N_TIME
    assert np.allclose(with_site["reco_ec"][1], sim["gpp"][:, 2] + sim["nee"][:, 2])
    assert np.allclose(with_site["et_ec"][1], sim["ET"][:, 2])
    without = evaluate.target_pairs(driver, sim, driver.patch.values == 101)
    assert without["gpp_ec"][0].size == 0


def test_loss_terms_and_evaluation_pairs_agree_on_the_same_simulation():
    """Per target, the loss's summed squared error equals that of the evaluation's pairs."""
    driver = tiny_driver()
    driver["biomass"][3, 14] = np.nan  # a year with a missing month drops out of both
    driver["ewt"][1, :4] = np.nan
    sim = fake_sim(driver, np.random.default_rng(7))
    config = loss.LossConfig.from_mapping(
        {name: 1.0 for name in targets.EVALUATED}, reduction="sum", coarse_min_valid=0.0
    )
    pairs = evaluate.target_pairs(driver, sim, np.ones(driver.sizes["cell"], bool))
    assert sorted(pairs) == sorted(targets.EVALUATED)
    for name in targets.EVALUATED:
        total = 0.0
        for patch in driver.patch_id.values:  # one patch at a time: no padded slots
            cells = np.flatnonzero(driver.patch.values == patch)
            packed = batches.pack(driver, np.array([patch]))
            out = {k: jnp.asarray(v[:, cells][:, None, :], jnp.float32) for k, v in sim.items()}
            observation = packed.observations[targets.observed(name)]
            total += float(loss.term_error(name, out, observation, config))
        obs, model = pairs[name]
        assert obs.size > 0, name
        assert total == pytest.approx(np.sum((model - obs) ** 2), rel=2e-4), name


def test_target_pairs_of_targets_absent_from_the_driver_are_omitted():
    driver = tiny_driver().drop_vars(["ewt", "som", "gpp_ec", "reco_ec", "et_ec"])
    pairs = evaluate.target_pairs(
        driver, fake_sim(driver, np.random.default_rng(0)), np.ones(driver.sizes["cell"], bool)
    )
    assert sorted(pairs) == sorted(["lai", "sif", "et", "biomass", "nbe"])


def test_member_metrics_has_one_row_per_variable_and_split():
    driver = tiny_driver()
    sim = fake_sim(driver, np.random.default_rng(6))
    table = evaluate.member_metrics(
        driver, sim, {"train_patches": [100, 101, 102, 103], "dev_patches": [104]}
    )
    assert list(table.columns) == list(evaluate.METRIC_COLUMNS[3:])
    pooled = table[table.metric == "r2_score_pooled"]
    assert len(pooled) == len(targets.EVALUATED) * 3
    assert set(pooled.split) == {"train", "dev", "test"}
    assert pooled.set_index(["variable", "split"]).loc[("gpp_ec", "dev"), "n"] == 0
    cell = table[table.metric == "nse_cell_median"]
    assert cell.variable.tolist() == ["lai", "sif", "et", "biomass"]
    assert set(cell.split) == {"test"}
    assert table.metric.tolist() == ["r2_score_pooled"] * len(pooled) + ["nse_cell_median"] * 4


def test_cell_median_nse_by_hand():
    driver = tiny_driver()
    lai = driver.lai.values.copy()  # (cell, time); cell 0 misses 5 months
    lai[3, 2:] = np.nan  # two observed months: left out
    lai[4] = 1.0  # no variance: left out
    driver["lai"] = (("cell", "time"), lai)
    observed = batches.observations(driver)["lai"][0].astype(np.float64).T  # (cell, time)
    observed = np.where(np.isfinite(lai), observed, np.nan)
    sim = fake_sim(driver, np.random.default_rng(2))
    series = sim["lai"].T.copy()

    def deviation(c: int) -> tuple[float, np.ndarray]:
        mean = np.nanmean(observed[c])
        return mean, np.nan_to_num(observed[c] - mean)

    series[0] = np.nan_to_num(observed[0])  # NSE 1
    series[1] = deviation(1)[0]  # the observed mean: NSE 0
    series[2] = deviation(2)[0] - deviation(2)[1]  # mirrored: SSE 4 SS, NSE -3
    series[5] = observed[5] + 0.5 * deviation(5)[1]  # SSE SS / 4: NSE 0.75
    sim["lai"] = series.T
    cells = np.isin(np.arange(driver.sizes["cell"]), [0, 1, 2, 3, 4, 5])
    scores = evaluate.cell_median_scores(driver, sim, cells)
    assert list(scores) == ["lai", "sif", "et", "biomass"]
    nse, r2, n = scores["lai"]
    assert n == 4 and nse == pytest.approx((0.0 + 0.75) / 2)
    assert np.isfinite(r2)
    # two years: fewer than 3 blocks of 12 months in every cell, so no cell counts
    nse, r2, n = scores["biomass"]
    assert n == 0 and np.isnan(nse) and np.isnan(r2)


def test_simulate_cells_chunks_give_the_same_result():
    driver = tiny_driver()
    params = middle_parameters(driver.sizes["cell"])
    params["LCMA"] = np.linspace(20.0, 150.0, driver.sizes["cell"])
    whole = evaluate.simulate_cells(driver, params)
    chunked = evaluate.simulate_cells(driver, params, chunk=8)
    assert set(whole) == set(evaluate.SIM_OUTPUTS)
    assert whole["lai"].shape == (N_TIME, driver.sizes["cell"]) and whole["lai"].dtype == np.float32
    for name in whole:
        np.testing.assert_array_equal(whole[name], chunked[name])


def test_simulate_cells_rejects_parameters_out_of_bounds():
    driver = tiny_driver()
    params = middle_parameters(driver.sizes["cell"])
    params["Q10"] = np.full(driver.sizes["cell"], 5.0)
    with pytest.raises(ValueError, match="Q10"):
        evaluate.simulate_cells(driver, params)


def test_per_cell_temporal_r2_maps_cells_onto_the_grid():
    driver = tiny_driver()
    sim = fake_sim(driver, np.random.default_rng(7))
    cell = 5
    sim["lai"][:, cell] = 2.0 * driver.lai.values[cell] + 1.0  # perfectly correlated, biased
    maps = evaluate.per_cell_temporal_r2(driver, sim)
    assert maps.lai_r2.dims == ("lat", "lon")
    y, x = int(driver.cell_y[cell]), int(driver.cell_x[cell])
    assert float(maps.lai_r2[y, x]) == pytest.approx(1.0, abs=1e-5)
    assert float(maps.lai_nse[y, x]) < 0.5
    assert int(np.isfinite(maps.et_r2.values).sum()) == driver.sizes["cell"]
    assert np.all(np.isnan(maps.et_nse.values[~driver.land_mask.values]))


# ---- recovery and tables


def test_perfect_retrieval_recovers_exactly():
    rng = np.random.default_rng(8)
    truth = {p.name: p.minimum + (p.maximum - p.minimum) * rng.random(50) for p in parameters.TABLE}
    table = evaluate.parameter_recovery(truth, truth)
    assert list(table.parameter) == list(parameters.NAMES)
    assert (
        np.allclose(table.pearson_r, 1.0)
        and np.allclose(table.bias, 0.0)
        and np.allclose(table.rmse, 0.0)
    )


def test_recovery_of_a_shifted_retrieval():
    truth = {"Q10": np.array([0.02, 0.03, 0.04, 0.05, np.nan])}
    table = evaluate.parameter_recovery({"Q10": truth["Q10"] + 0.01}, truth)
    row = table.iloc[0]
    assert (
        row.pearson_r == pytest.approx(1.0)
        and row.bias == pytest.approx(0.01)
        and row.rmse == pytest.approx(0.01)
    )


def test_recovery_of_a_phase_a_year_off_is_exact():
    # DALEC reads Bday modulo a year: a retrieval one year later is the truth itself.
    truth = {"Bday": np.array([830.0, 845.0, 860.0])}
    table = evaluate.parameter_recovery({"Bday": truth["Bday"] + 365.25}, truth)
    row = table.iloc[0]
    assert row.pearson_r == pytest.approx(1.0) and row.bias == pytest.approx(0.0)
    assert row.rmse == pytest.approx(0.0, abs=1e-9)


def write_table(path: Path, rows: list[dict], columns) -> Path:
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def test_gather_metrics_sorts_and_keeps_the_columns(tmp_path):
    def row(setup, member, variable, split):
        return {
            "grid": "g",
            "setup": setup,
            "member": member,
            "variable": variable,
            "split": split,
            "metric": "r2_score_pooled",
            "r2_score": 0.5,
            "explained_variance": 0.6,
            "n": 10,
        }

    a = write_table(
        tmp_path / "a.csv",
        [
            row("PFT", "ensemble", "lai", "dev"),
            row("PFT", 10, "lai", "dev"),
            row("PFT", 2, "nbe", "train"),
            row("PFT", 2, "lai", "test"),
        ],
        evaluate.METRIC_COLUMNS,
    )
    b = write_table(tmp_path / "b.csv", [row("CLIM", 0, "sif", "train")], evaluate.METRIC_COLUMNS)
    evaluate.gather_metrics([a, b], tmp_path / "all.csv")
    table = pd.read_csv(tmp_path / "all.csv", dtype={"member": str})
    assert list(table.columns) == list(evaluate.METRIC_COLUMNS)
    assert table[["setup", "member", "variable"]].values.tolist() == [
        ["CLIM", "0", "sif"],
        ["PFT", "2", "lai"],
        ["PFT", "2", "nbe"],
        ["PFT", "10", "lai"],
        ["PFT", "ensemble", "lai"],
    ]


def test_gather_rejects_a_table_with_other_columns(tmp_path):
    bad = write_table(
        tmp_path / "bad.csv",
        [{"grid": "g", "setup": "s", "parameter": "Q10", "r": 1.0}],
        ["grid", "setup", "parameter", "r"],
    )
    with pytest.raises(ValueError, match="bad.csv"):
        evaluate.gather_recovery([bad], tmp_path / "all.csv")
    with pytest.raises(ValueError, match="no tables"):
        evaluate.gather_metrics([], tmp_path / "all.csv")


def test_gather_recovery_orders_parameters_as_the_table(tmp_path):
    rows = [
        {"grid": "g", "setup": "s", "parameter": p, "pearson_r": 1.0, "bias": 0.0, "rmse": 0.0}
        for p in ("Q10", "LCMA", "f_gpp")
    ]
    path = write_table(tmp_path / "r.csv", rows, evaluate.RECOVERY_COLUMNS)
    evaluate.gather_recovery([path], tmp_path / "all.csv")
    table = pd.read_csv(tmp_path / "all.csv")
    assert list(table.columns) == list(evaluate.RECOVERY_COLUMNS)
    assert list(table.parameter) == ["f_gpp", "Q10", "LCMA"]


def test_write_geotiff_is_north_up_wgs84(tmp_path):
    rioxarray = pytest.importorskip("rioxarray", reason="rioxarray writes the GeoTIFFs")
    field = xr.DataArray(
        np.arange(12.0).reshape(3, 4),
        dims=("lat", "lon"),
        coords={"lat": [10.5, 11.5, 12.5], "lon": [1.5, 2.5, 3.5, 4.5]},
    )
    field[0, 0] = np.nan
    evaluate.write_geotiff(field, tmp_path / "f.tif")
    raster = rioxarray.open_rasterio(tmp_path / "f.tif", masked=True).squeeze("band")
    assert raster.rio.crs.to_epsg() == 4326
    assert raster.y.values.tolist() == [12.5, 11.5, 10.5]
    assert float(raster.sel(y=12.5, x=4.5)) == 11.0 and np.isnan(float(raster.sel(y=10.5, x=1.5)))


# ---- the entry point, on two briefly trained members


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    driver = tiny_driver()
    driver.to_netcdf(root / "driver.nc")
    options = train.TrainOptions(
        epochs=1,
        learning_rate=3e-3,
        patches_per_step=4,
        dev_fraction=0.2,
        checkpoint_every=100,
        max_restarts=2,
        width=8,
        depth=2,
        loss=loss.LossConfig.from_mapping(
            {"lai": 1.0, "nbe": 1.0}, reduction="mean", coarse_min_valid=0.8
        ),
    )
    files = {"driver": root / "driver.nc"}
    for member in (0, 3):
        result = jobs.train_members(
            driver, [("CLIM", member)], 11, options, root / f"ckpt{member}.npz"
        )[0]
        files[f"weights{member}"], files[f"info{member}"] = (
            root / f"w{member}.npz",
            root / f"i{member}.json",
        )
        train.save_member(result, files[f"weights{member}"], files[f"info{member}"])
    truth = xr.Dataset(
        {
            n: (
                ("lat", "lon"),
                np.full((GRID_LAT.size, GRID_LON.size), np.sqrt(p.minimum * p.maximum)),
            )
            for n, p in parameters.BY_NAME.items()
        },
        coords={"lat": GRID_LAT, "lon": GRID_LON},
    )
    truth.to_netcdf(root / "truth.nc")
    files["truth"] = root / "truth.nc"
    return files


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("outputs")
    paths = {
        k: out / f"{k}.{ext}"
        for k, ext in (
            ("metrics", "csv"),
            ("params", "nc"),
            ("simulated", "nc"),
            ("maps", "nc"),
            ("recovery", "csv"),
        )
    }
    evaluate.evaluate_setup(
        trained["driver"],
        [(trained["weights0"], trained["info0"]), (trained["weights3"], trained["info3"])],
        "tiny",
        "CLIM",
        metrics_csv=paths["metrics"],
        params_nc=paths["params"],
        simulated_nc=paths["simulated"],
        maps_nc=paths["maps"],
        truth_nc=trained["truth"],
        recovery_csv=paths["recovery"],
    )
    return paths


def test_evaluate_setup_metrics_table(evaluated):
    table = pd.read_csv(evaluated["metrics"], dtype={"member": str})
    assert list(table.columns) == list(evaluate.METRIC_COLUMNS)
    assert set(table.member) == {"0", "3", "ensemble"}
    assert (table.grid == "tiny").all() and (table.setup == "CLIM").all()
    pooled = table.metric == "r2_score_pooled"
    assert pooled.sum() == 3 * 3 * len(targets.EVALUATED)
    assert (~pooled).sum() == 3 * len(evaluate.CELL_SERIES)
    by = ["metric", "variable", "split"]
    members = table[table.member != "ensemble"].groupby(by)[["r2_score", "n"]].mean()
    ensemble = table[table.member == "ensemble"].set_index(by)
    assert np.allclose(ensemble.loc[members.index, "r2_score"], members.r2_score, equal_nan=True)
    assert np.allclose(ensemble.loc[members.index, "n"], members.n)
    assert (
        table.set_index(["member", "metric", "variable", "split"]).loc[
            ("0", "r2_score_pooled", "lai", "test"), "n"
        ]
        == 2 * N_TIME
    )


def test_evaluate_setup_parameter_maps(evaluated):
    driver = tiny_driver()
    with xr.open_dataset(evaluated["params"]) as maps:
        for name in parameters.NAMES:
            for var in (name, f"{name}_std"):
                assert maps[var].dims == ("lat", "lon")
                assert maps[var].attrs["units"] == parameters.BY_NAME[name].units
                assert maps[var].attrs["long_name"]
                finite = np.isfinite(maps[var].values)
                assert np.array_equal(finite, driver.land_mask.values), var
            lo, hi = parameters.BY_NAME[name].minimum, parameters.BY_NAME[name].maximum
            values = maps[name].values[driver.land_mask.values]
            assert np.all((values >= np.float32(lo)) & (values <= np.float32(hi))), name
        assert (
            maps.lat.attrs["units"] == "degrees_north" and maps.lon.attrs["units"] == "degrees_east"
        )
        assert maps.attrs["Conventions"].startswith("CF")
    for name in parameters.KEY_PARAMETERS:
        assert evaluated["params"].with_suffix(f".{name}.tif").exists()


def test_evaluate_setup_simulation_and_skill_maps(evaluated):
    driver = tiny_driver()
    with xr.open_dataset(evaluated["simulated"]) as sim:
        assert set(evaluate.SIMULATED) <= set(sim.data_vars)
        assert sim.lai.dims == ("time", "cell") and sim.sizes["cell"] == int(driver.test.sum())
        assert np.allclose(sim.lat.values, driver.lat.values[driver.test.values])
        assert sim.next_water_pool.attrs["units"] == "mm" and sim.gpp.attrs["units"] == "gC m-2 d-1"
        assert np.isfinite(sim.lai.values).all()
    with xr.open_dataset(evaluated["maps"]) as maps:
        assert {"lai_r2", "lai_nse", "sif_r2", "sif_nse", "et_r2", "et_nse"} <= set(maps.data_vars)
        assert np.all(np.isnan(maps.lai_r2.values[~driver.land_mask.values]))


def test_evaluate_setup_recovery_table(evaluated):
    table = pd.read_csv(evaluated["recovery"])
    assert list(table.columns) == list(evaluate.RECOVERY_COLUMNS)
    assert list(table.parameter) == list(parameters.NAMES)
    assert (table.rmse >= 0).all() and np.allclose(table.rmse >= np.abs(table.bias) - 1e-9, True)


def test_evaluate_setup_rejects_a_member_of_another_setup(trained, tmp_path):
    with pytest.raises(ValueError, match=r"i0\.json.*'CLIM', not 'PFT'"):
        evaluate.evaluate_setup(
            trained["driver"],
            [(trained["weights0"], trained["info0"])],
            "tiny",
            "PFT",
            metrics_csv=tmp_path / "m.csv",
            params_nc=tmp_path / "p.nc",
            simulated_nc=tmp_path / "s.nc",
            maps_nc=tmp_path / "x.nc",
        )
    assert not list(tmp_path.iterdir())


def test_evaluate_selected_keeps_the_selected_members(trained, tmp_path):
    selected = tmp_path / "selected.json"
    selected.write_text(json.dumps({"kept": [3], "final_train_loss": {"0": 2.0, "3": 1.0}}))
    outputs = SimpleNamespace(
        metrics=tmp_path / "m.csv",
        recovery=tmp_path / "r.csv",
        maps=tmp_path / "x.nc",
        simulated=tmp_path / "s.nc",
        params=tmp_path / "p.nc",
    )
    evaluate.evaluate_selected(
        trained["driver"],
        selected,
        [trained["weights0"], trained["weights3"]],
        [trained["info0"], trained["info3"]],
        "tiny",
        "CLIM",
        None,
        outputs,
    )
    table = pd.read_csv(outputs.metrics, dtype={"member": str})
    assert set(table.member) == {"3", "ensemble"}
    recovery = pd.read_csv(outputs.recovery)
    assert list(recovery.columns) == list(evaluate.RECOVERY_COLUMNS) and recovery.empty
