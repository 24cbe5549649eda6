"""Kernel SHAP: additivity, shares, scaling, determinism, latitude, truth, and the rule's files."""

from __future__ import annotations

import itertools
import json

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from figures import assert_figure

from hybridland.analysis import explain, kernel_shap
from hybridland.contract import AGE, CLIM, PFT, PREDICTORS, SOIL
from hybridland.data import twin
from hybridland.model import network, parameters
from hybridland.training import setups, train
from hybridland.training.members import member_parameters

pytest.importorskip("shap", reason="Kernel SHAP needs the shap package (pip install shap)")
pytest.importorskip(
    "sklearn", reason="dependence fits need scikit-learn (pip install scikit-learn)"
)


def small_driver(cells: int = 40, seed: int = 0) -> xr.Dataset:
    """Predictors of a few cells; the first 12 are 90 % NF, the last 8 are test cells."""
    rng = np.random.default_rng(seed)
    fractions = rng.dirichlet(np.ones(len(PFT)), cells)
    fractions[:12] = 0.1 * fractions[:12]
    fractions[:12, 0] += 0.9
    data = {p: ("cell", fractions[:, i]) for i, p in enumerate(PFT)}
    data |= {
        "MAT": ("cell", rng.normal(8.0, 5.0, cells)),
        "MAP": ("cell", rng.uniform(200.0, 1200.0, cells)),
        "elevation": ("cell", rng.uniform(1000.0, 3500.0, cells)),
        "canopy_height": ("cell", rng.uniform(0.0, 30.0, cells)),
        "forest_age": ("cell", rng.uniform(0.0, 200.0, cells)),
    }
    data |= {s: ("cell", rng.normal(size=cells)) for s in SOIL}
    data |= {
        "lat": ("cell", rng.uniform(-10.0, 10.0, cells)),
        "lon": ("cell", rng.uniform(-110.0, -100.0, cells)),
        "test": ("cell", np.arange(cells) >= cells - 8),
        "patch": ("cell", np.arange(cells) // 8),
    }
    return xr.Dataset(data)


def random_network(
    rng: np.random.Generator, n_features: int, width: int = 8, depth: int = 2
) -> network.Network:
    """Shapes of ``network.init_network`` with NumPy weights (no JAX compilation, so fast)."""

    def layer(n_in: int, n_out: int) -> network.Layer:
        return network.Layer(
            jnp.asarray(rng.normal(0.0, 0.5, (n_in, n_out)), jnp.float32),
            jnp.zeros(n_out, jnp.float32),
        )

    sizes = [n_features] + [width] * depth
    n_out = {g: len(parameters.group_names(g)) for g in parameters.GROUPS}
    return network.Network(
        tuple(layer(m, n) for m, n in itertools.pairwise(sizes)),
        layer(width, n_out["process"]),
        layer(width, n_out["initial_pool"]),
        layer(width + 1, n_out["phenology"]),
    )


def tiny_member(driver: xr.Dataset, setup: str, number: int) -> train.Member:
    """An untrained member with standardisation fitted on the driver's cells."""
    raw = setups.feature_table(driver, setup, 3)
    raw = np.concatenate(
        [raw, np.asarray(network.lat_sigmoid(driver.lat.values))[:, None]], axis=-1
    )
    net = random_network(np.random.default_rng(number), raw.shape[1] - 1)
    info = {
        "setup": setup,
        "member": number,
        "seed": 3,
        "columns": list(setups.columns(setup)),
        "final_train_loss": float(number),
        "options": {"width": 8, "depth": 2},
    }
    return train.Member(net, network.Standardizer.fit(raw), info)


def additive(x: np.ndarray) -> np.ndarray:
    """Two outputs, additive in features 0-2; feature 3 is ignored."""
    return np.stack([2.0 * x[:, 0] + np.sin(x[:, 1]), -(x[:, 2] ** 2)], axis=-1)


def test_kernel_shap_recovers_additive_contributions():
    rng = np.random.default_rng(0)
    background, explained = rng.normal(size=(20, 4)), rng.normal(size=(5, 4))
    values = kernel_shap.kernel_shap(additive, background, explained, nsamples=100, seed=1)
    assert values.shape == (5, 4, 2)
    np.testing.assert_allclose(
        values.sum(axis=1), additive(explained) - additive(background).mean(0), atol=1e-10
    )
    np.testing.assert_allclose(
        values[:, 0, 0], 2.0 * (explained[:, 0] - background[:, 0].mean()), atol=1e-8
    )
    np.testing.assert_allclose(
        values[:, 1, 0], np.sin(explained[:, 1]) - np.sin(background[:, 1]).mean(), atol=1e-8
    )
    np.testing.assert_allclose(
        values[:, 2, 1], -(explained[:, 2] ** 2) + (background[:, 2] ** 2).mean(), atol=1e-8
    )
    np.testing.assert_allclose(values[:, 3], 0.0, atol=1e-10)
    share = kernel_shap.shares(values)
    np.testing.assert_allclose(share.sum(axis=0), 1.0)
    assert share[3].max() < 1e-9  # the ignored feature


def test_minmax_scale_bounds_keep_zero_and_sign():
    values = np.random.default_rng(1).normal(size=(30, 5, 3)) * np.array([1.0, 100.0, 1e-4])
    values[:, 2] = 0.0
    scaled = kernel_shap.minmax_scale(values)
    span = scaled.max(axis=(0, 1)) - scaled.min(axis=(0, 1))
    np.testing.assert_allclose(span, 1.0)
    assert np.all(np.abs(scaled) <= 1.0) and np.all(scaled[:, 2] == 0.0)
    np.testing.assert_array_equal(np.sign(scaled), np.sign(values))
    np.testing.assert_allclose(kernel_shap.shares(scaled), kernel_shap.shares(values))
    assert np.all(kernel_shap.minmax_scale(np.zeros((4, 2, 1))) == 0.0)
    assert np.isnan(kernel_shap.shares(np.zeros((4, 2, 1)))).all()


def test_seed_makes_sampling_deterministic_and_leaves_numpy_state_alone():
    rng = np.random.default_rng(2)
    background, explained = rng.normal(size=(10, 12)), rng.normal(size=(3, 12))

    def interacting(x):
        return (x[:, :6].prod(axis=1) + np.tanh(x[:, 6:]).sum(axis=1))[:, None]

    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = kernel_shap.kernel_shap(interacting, background, explained, nsamples=60, seed=5)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    b = kernel_shap.kernel_shap(interacting, background, explained, nsamples=60, seed=5)
    c = kernel_shap.kernel_shap(interacting, background, explained, nsamples=60, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # a row's values do not depend on which other rows are explained with it
    np.testing.assert_array_equal(
        kernel_shap.kernel_shap(interacting, background, explained[:1], nsamples=60, seed=5), a[:1]
    )


def test_progress_is_logged_at_a_steady_cadence(caplog):
    rng = np.random.default_rng(3)
    with caplog.at_level("INFO", logger="hybridland.analysis.kernel_shap"):
        kernel_shap.kernel_shap(
            additive, rng.normal(size=(5, 4)), rng.normal(size=(20, 4)), nsamples=14, progress=0.25
        )
    lines = [r.getMessage() for r in caplog.records if "Kernel SHAP" in r.getMessage()]
    assert [line.split(": ")[1].split()[0] for line in lines] == ["5/20", "10/20", "15/20", "20/20"]


def test_member_function_matches_training_parameters_with_standardised_lat_sigmoid():
    driver = small_driver()
    members = [tiny_member(driver, "PFT+CLIM", n) for n in (0, 1)]
    names = ["canopy_efficiency", "Bday", "Fday", "f_gpp"]
    features, held = kernel_shap.input_layout(members[0].info["columns"])
    assert held == (kernel_shap.LATITUDE,)
    table = kernel_shap.input_table(driver, "PFT+CLIM", 3, features + held)
    each = kernel_shap.member_function(members, names, features + held)(table)
    for m, member in enumerate(members):
        expected = member_parameters(driver, member)
        for k, name in enumerate(names):
            np.testing.assert_allclose(each[:, m, k], expected[name], rtol=2e-6)
    np.testing.assert_allclose(
        kernel_shap.ensemble_function(members, names)(table), each.mean(axis=1)
    )


def test_latlon_setup_reads_the_hemisphere_flag_from_lat_deg():
    driver = small_driver()
    member = tiny_member(driver, "LATLON", 0)
    features, held = kernel_shap.input_layout(member.info["columns"])
    assert features == ("lat_deg", "lon_deg") and held == ()
    table = kernel_shap.input_table(driver, "LATLON", 3, features)
    out = kernel_shap.ensemble_function([member], ["Bday"], features)(table)
    np.testing.assert_allclose(out[:, 0], member_parameters(driver, member)["Bday"], rtol=2e-6)


def test_ensemble_shap_is_the_mean_of_member_shap():
    driver = small_driver()
    members = [tiny_member(driver, "PFT+CLIM", n) for n in (0, 1, 2)]
    features, held = kernel_shap.input_layout(members[0].info["columns"])
    table = kernel_shap.input_table(driver, "PFT+CLIM", 3, features + held)
    p, names = len(features), ["LCMA", "Q10"]
    args = {
        "background": table[:10, :p],
        "explained": table[20:23, :p],
        "nsamples": 50,
        "seed": 4,
        "held": table[20:23, p:],
    }
    each = kernel_shap.kernel_shap(
        kernel_shap.stacked(kernel_shap.member_function(members, names)), **args
    ).reshape(3, p, 3, 2)
    mean = kernel_shap.kernel_shap(kernel_shap.ensemble_function(members, names), **args)
    np.testing.assert_allclose(each.mean(axis=2), mean, rtol=1e-6, atol=1e-9)


def test_derived_quantities_use_flab_and_conventional_q10():
    p = {
        "f_gpp": np.array(0.4),
        "f_fol": np.array(0.3),
        "flab": np.array(0.1),
        "f_root": np.array(0.5),
        "Q10": np.array(0.07),
        "Bday": np.array(800.0),
    }
    names = [
        "autotrophic_allocation",
        "foliar_allocation",
        "labile_allocation",
        "root_allocation",
        "wood_allocation",
    ]
    fractions = parameters.quantities(p, names)
    np.testing.assert_allclose(fractions, [0.4, 0.18, 0.042, 0.189, 0.189])
    assert fractions.sum() == pytest.approx(1.0)
    assert parameters.quantities(p, ["Q10", "Bday_doy"]) == pytest.approx(
        [np.exp(0.7), 800.0 - 730.5]
    )
    with pytest.raises(ValueError, match="unknown quantities"):
        parameters.check_quantities(["canopy"])


def test_true_function_gives_soil_no_share():
    driver = small_driver()
    features, held = kernel_shap.input_layout(setups.columns("CLIM+SOIL"), truth=True)
    assert held == (kernel_shap.LATITUDE, *PFT, *AGE)
    table = kernel_shap.input_table(driver, "CLIM+SOIL", 3, features + held)
    p, names = len(features), ["f_gpp", "LCMA", "Csom"]
    values = kernel_shap.kernel_shap(
        kernel_shap.true_function(names, features + held),
        table[:10, :p],
        table[10:15, :p],
        nsamples=300,
        seed=0,
        held=table[10:15, p:],
    )
    importance = kernel_shap.importance_table(values, features, names, "CLIM+SOIL")
    soil = importance[importance.feature.isin(SOIL)]
    assert soil.share.max() < 1e-9
    assert importance[importance.parameter == "f_gpp"].set_index("feature").share[
        "MAT"
    ] == pytest.approx(1.0)
    # LCMA depends on PFT only, held at each cell's value: nothing left to explain
    assert importance[importance.parameter == "LCMA"].share.isna().all()
    groups = kernel_shap.group_table(importance)
    assert list(groups.columns) == kernel_shap.GROUP_COLUMNS
    assert set(groups.group) == {"CLIM", "SOIL"}


def test_rank_correlation():
    shares = pd.Series({"MAT": 0.5, "MAP": 0.3, "SAND": 0.2})
    assert kernel_shap.rank_correlation(shares, shares) == pytest.approx(1.0)
    assert kernel_shap.rank_correlation(shares, 1.0 - shares) == pytest.approx(-1.0)
    assert np.isnan(kernel_shap.rank_correlation(shares, shares * 0.0))
    table = pd.DataFrame(
        {"setup": "CLIM", "parameter": "Q10", "feature": shares.index, "share": shares.values}
    )
    ranks = kernel_shap.rank_correlations(table, table)
    assert list(ranks.columns) == kernel_shap.RANK_COLUMNS and ranks.spearman.tolist() == [
        pytest.approx(1.0)
    ]


SOIL_TRUTH = twin.Overrides({"field_capacity": "SOIL", "tor_wood": "none", "Cwood": "PFT"}, seed=5)


def test_true_function_follows_the_configured_truth():
    driver = small_driver()
    features, held = kernel_shap.input_layout(setups.columns("CLIM+AGE"), truth=True)
    assert held == (kernel_shap.LATITUDE, *PFT, *SOIL)
    table = kernel_shap.input_table(driver, "CLIM+AGE", 3, features + held)
    p, names = len(features), ["field_capacity", "tor_wood"]
    shares = {}
    for label, overrides in (("designed", None), ("configured", SOIL_TRUTH)):
        values = kernel_shap.kernel_shap(
            kernel_shap.true_function(names, features + held, overrides),
            table[:10, :p],
            table[10:15, :p],
            nsamples=300,
            seed=0,
            held=table[10:15, p:],
        )
        importance = kernel_shap.importance_table(values, features, names, label)
        shares[label] = importance.groupby("parameter").share.sum(min_count=1)
    # Designed: tor_wood reads AGE (explained); configured: constant, nothing to explain.
    assert shares["designed"]["tor_wood"] == pytest.approx(1.0)
    assert np.isnan(shares["configured"]["tor_wood"])


def write_raw_twin(raw, overrides: twin.Overrides, seed: int) -> None:
    """truth_predictors.nc and truth_parameters.nc of a 4 x 5 twin with ``overrides``."""
    driver = small_driver(20, seed=2)
    grid = {"lat": np.arange(4.0), "lon": np.arange(5.0)}
    maps = {c: (("lat", "lon"), driver[c].values.reshape(4, 5)) for c in PREDICTORS}
    land = np.ones((4, 5), np.uint8)
    xr.Dataset({**maps, "land_mask": (("lat", "lon"), land)}, coords=grid).to_netcdf(
        raw / "truth_predictors.nc"
    )
    truth = twin.true_parameters({c: v for c, (_, v) in maps.items()}, overrides)
    drivers = twin.drivers(overrides)
    variables = {
        n: xr.Variable(("lat", "lon"), v.astype(np.float32), {"drivers": " ".join(drivers[n])})
        for n, v in truth.items()
    }
    xr.Dataset(variables, coords=grid, attrs={"seed": seed}).to_netcdf(raw / "truth_parameters.nc")


def test_recorded_overrides_reproduce_the_truth_file(tmp_path):
    write_raw_twin(tmp_path, SOIL_TRUTH, seed=5)
    assert explain.recorded_overrides(tmp_path) == SOIL_TRUTH
    write_raw_twin(tmp_path, twin.Overrides(), seed=1)
    assert explain.recorded_overrides(tmp_path) == twin.Overrides()
    # A span the record does not hold cannot be recovered: refused, not guessed.
    write_raw_twin(tmp_path, SOIL_TRUTH._replace(span=0.4), seed=5)
    with pytest.raises(ValueError, match="do not reproduce the true Cwood, field_capacity;"):
        explain.recorded_overrides(tmp_path)


def test_dominant_pft_cells():
    cells = kernel_shap.dominant_pft_cells(small_driver(), threshold=0.8)
    assert list(cells) == ["NF"] and cells["NF"].tolist() == list(range(12))


def test_explain_files_writes_tables_values_and_figures(tmp_path):
    driver = small_driver()
    driver.to_netcdf(tmp_path / "driver.nc")
    members = []
    for number in (0, 1, 2):
        member = tiny_member(driver, "CLIM+AGE", number)
        paths = (
            tmp_path / f"member{number}" / "weights.npz",
            tmp_path / f"member{number}" / "member.json",
        )
        train.save_member(member, *paths)
        members.append(paths)
    (tmp_path / "selected.json").write_text(json.dumps({"kept": [0, 2]}))
    out = tmp_path / "shap" / "importance.csv"
    explain.explain_files(
        tmp_path / "driver.nc",
        members,
        tmp_path / "selected.json",
        "g",
        "CLIM+AGE",
        ["Bday"],
        n_background=6,
        n_explained=12,
        nsamples="auto",
        seed=1,
        out_csv=out,
        out_figure_stem=tmp_path / "shap" / "dependence",
        truth=True,
        truth_overrides=twin.Overrides(),
    )
    importance = pd.read_csv(out)
    assert list(importance.columns) == ["setup", "parameter", "feature", "share"]
    assert list(importance.parameter.unique()) == [*parameters.KEY_QUANTITIES, "Bday"]
    assert set(importance.feature) == set(CLIM + AGE)
    np.testing.assert_allclose(importance.groupby("parameter").share.sum(), 1.0)
    siblings = explain.sibling_paths(out)
    truth = pd.read_csv(siblings["truth"])
    assert list(truth.columns) == list(importance.columns)
    assert (
        truth[truth.parameter == "f_gpp"]
        .set_index("feature")
        .share[["canopy_height", "forest_age"]]
        .max()
        < 1e-9
    )
    per_member = pd.read_csv(siblings["members"])
    assert per_member.member.unique().tolist() == [0, 2]
    # the group table's member spread is that of the members' own group sums
    groups = pd.read_csv(siblings["groups"])
    assert list(groups.columns) == kernel_shap.GROUP_COLUMNS + kernel_shap.MEMBER_SPREAD
    sums = (
        per_member.assign(group=per_member.feature.map(kernel_shap.feature_group))
        .groupby(["parameter", "group", "member"])
        .share.sum()
        .unstack("member")
    )
    spread = groups.set_index(["parameter", "group"]).loc[sums.index]
    np.testing.assert_allclose(spread.member_min, sums.min(axis=1))
    np.testing.assert_allclose(spread.member_max, sums.max(axis=1))
    explain.gather_files([out], [siblings["groups"]], tmp_path / "all.csv", tmp_path / "groups")
    assert_figure(tmp_path / "groups")
    conditional = pd.read_csv(siblings["conditional"])
    assert list(conditional.columns) == explain.CONDITIONAL_COLUMNS and set(conditional.pft) == {
        "NF"
    }
    assert list(pd.read_csv(siblings["truth_rank"]).columns) == kernel_shap.RANK_COLUMNS
    with xr.open_dataset(siblings["values"]) as values:
        assert values.shap.dims == ("cell", "feature", "member", "parameter")
        assert values.shap.shape == (12, 5, 2, 7) and not values.cell.isin(np.arange(32, 40)).any()
    assert_figure(tmp_path / "shap" / "dependence")


def test_the_identifiable_parameters_are_explained_beside_the_key_ones(caplog):
    summary = pd.DataFrame(
        {
            "setup": ["full"] * 4 + ["other"],
            "parameter": ["Bday", "Cwood", "Bday", "Cwood", "Bday"],
            "identifiable": [True, False, False, True, True],
            "criterion": ["combined", "combined", "cv_published", "cv_published", "combined"],
        }
    )
    assert explain.identifiable(summary, "full") == ["Bday"]  # the combined verdict only
    assert explain.key_parameters(explain.identifiable(summary, "full"))[-1] == "Bday"
    with caplog.at_level("INFO"):
        assert explain.identifiable(summary, "CLIM") == []
    assert "CLIM: no identifiability verdict" in caplog.text
