"""Identifiability: CV across members, Fisher sensitivity, the summary table, the entry point."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from drivers import tiny_driver
from figures import assert_figure

from hybridland.analysis import fisher, identifiability
from hybridland.model import network, parameters
from hybridland.model.loss import LossConfig
from hybridland.training import train


def hand_stack(values_by_name, n_members, n_cells):
    """Members x cells; parameters not named take the middle of their range in every member."""
    members = []
    for m in range(n_members):
        params = {
            n: np.full(n_cells, 0.5 * (p.minimum + p.maximum))
            for n, p in parameters.BY_NAME.items()
        }
        params.update({n: np.asarray(v[m], float) for n, v in values_by_name.items()})
        members.append(params)
    return identifiability.stack_parameters(members, list(range(n_members)))


def test_equal_members_have_cv_zero_and_known_spreads_give_known_cv():
    # LCMA over 2 members, 3 cells: [1, 3] -> mean 2, population std 1 -> 0.5;
    # [10, 10] -> 0; [4, 6] -> mean 5, std 1 -> 0.2.
    stack = hand_stack({"LCMA": [[1.0, 10.0, 4.0], [3.0, 10.0, 6.0]]}, n_members=2, n_cells=3)
    assert stack["LCMA"].dims == ("member", "cell")
    cv = identifiability.coefficient_of_variation(stack)
    np.testing.assert_allclose(cv["LCMA"].values, [0.5, 0.0, 0.2])
    np.testing.assert_array_equal(cv["f_gpp"].values, 0.0)
    assert set(cv.data_vars) == set(parameters.NAMES)


def test_cv_of_four_members_and_of_a_zero_mean():
    # [2, 2, 2, 6]: mean 3, population variance (1+1+1+9)/4 = 3 -> CV sqrt(3)/3.
    stack = hand_stack(
        {"Q10": [[2.0, 0.0, 0.0], [2.0, 0.0, -1.0], [2.0, 0.0, 1.0], [6.0, 0.0, 0.0]]}, 4, 3
    )
    cv = identifiability.coefficient_of_variation(stack)["Q10"].values
    assert cv[0] == pytest.approx(np.sqrt(3) / 3)
    assert cv[1] == 0.0  # agreeing on zero is agreement
    assert np.isinf(cv[2])  # spread around a zero mean


def test_the_conditional_interval_is_as_wide_as_the_cells_disagree():
    rng = np.random.default_rng(0)
    base = np.diag([4.0, 1.0, 0.25])  # conditional sensitivities 2, 1, 0.5
    same = np.repeat(base[None], 30, axis=0)
    np.testing.assert_allclose(
        fisher.conditional_interval(same, rng), [[2.0, 1.0, 0.5]] * 2, rtol=1e-5
    )
    # Half the cells see the second parameter 9 times as well as the others: its pooled
    # information is 5 (sensitivity 2.24); resampling the cells spreads it, not the others.
    mixed = same.copy()
    mixed[::2, 1, 1] = 9.0
    low, high = fisher.conditional_interval(mixed, np.random.default_rng(1))
    assert low[1] < np.sqrt(5.0) < high[1] and high[1] - low[1] > 0.2
    np.testing.assert_allclose([low[0], high[0], low[2], high[2]], [2.0, 2.0, 0.5, 0.5], rtol=1e-5)
    again = fisher.conditional_interval(mixed, np.random.default_rng(1))
    np.testing.assert_array_equal(again, [low, high])


def test_members_a_year_apart_agree_on_a_phase():
    # Bday of 2 members, 2 cells: 400 and 765.25 (one year later) agree; 400 and 420 do not.
    stack = hand_stack({"Bday": [[400.0, 400.0], [765.25, 420.0]]}, n_members=2, n_cells=2)
    cv = identifiability.coefficient_of_variation(stack)["Bday"].values
    np.testing.assert_allclose(cv, [0.0, 10.0 / 410.0], atol=1e-12)
    np.testing.assert_allclose(identifiability.member_mean(stack)["Bday"].values, [400.0, 410.0])


def test_summary_uses_spatial_median_and_strict_threshold():
    # CV of Clab per cell: 0.1, 0.2 (2 and 2.4 vs mean), NaN, 0.9 -> median of finite = 0.2.
    cv = identifiability.coefficient_of_variation(hand_stack({}, 2, 4))
    cv["Clab"][:] = [0.1, 0.2, np.nan, 0.9]
    cv["Cfol"][:] = 0.5
    seen = pd.Series(2.0, index=list(parameters.NAMES))
    table = identifiability.summary(cv, seen, "PFT+CLIM", threshold=0.5)
    published = table[table.criterion == "cv_published"]
    assert list(published.parameter) == list(parameters.NAMES)
    row = published.set_index("parameter")
    assert row.loc["Clab", "median_cv"] == pytest.approx(0.2) and row.loc["Clab", "identifiable"]
    assert row.loc["Clab", "value"] == pytest.approx(0.2) and row.loc["Clab", "threshold"] == 0.5
    assert not row.loc["Cfol", "identifiable"]  # 0.5 is not below 0.5
    assert (table.setup == "PFT+CLIM").all()
    with pytest.raises(ValueError, match="identifiability.threshold must be positive"):
        identifiability.summary(cv, seen, "PFT", threshold=0.0)
    with pytest.raises(ValueError, match="identifiability.fisher_threshold must be positive"):
        identifiability.summary(cv, seen, "PFT", fisher_threshold=-1.0)


def test_summary_is_long_with_one_row_per_criterion_and_parameter_and_combines_both():
    cv = identifiability.coefficient_of_variation(hand_stack({}, 2, 3))  # CV 0 everywhere
    cv["LCMA"][:] = 0.9  # members disagree
    seen = pd.Series(2.0, index=list(parameters.NAMES)).drop("Q10")  # Q10: no value
    seen["IWUE"] = 1e-3  # members agree, the observations do not see it
    seen["f_gpp"] = 1.0  # exactly at the threshold: reaches it
    table = identifiability.summary(cv, seen, "S", threshold=0.5, fisher_threshold=1.0)
    assert list(table.columns) == [
        "setup",
        "parameter",
        "median_cv",
        "identifiable",
        "criterion",
        "value",
        "threshold",
    ]
    assert len(table) == 3 * len(parameters.NAMES)
    assert list(dict.fromkeys(table.criterion)) == ["cv_published", "fisher", "combined"]
    verdict = {c: identifiability.verdicts(table, "S", c) for c in identifiability.CRITERIA}
    assert verdict["cv_published"]["IWUE"] and not verdict["fisher"]["IWUE"]
    assert not verdict["combined"]["IWUE"] and not verdict["combined"]["LCMA"]
    assert not verdict["fisher"]["Q10"] and verdict["fisher"]["f_gpp"]
    assert (verdict["combined"] == (verdict["cv_published"] & verdict["fisher"])).all()
    fisher_rows = table[table.criterion == "fisher"].set_index("parameter")
    assert fisher_rows.loc["IWUE", "value"] == 1e-3 and (fisher_rows.threshold == 1.0).all()
    assert fisher_rows.loc["LCMA", "median_cv"] == pytest.approx(0.9)
    combined = table[table.criterion == "combined"]
    assert combined.value.isna().all() and combined.threshold.isna().all()


def test_stack_rejects_a_member_without_a_parameter():
    members = [{n: np.ones(2) for n in parameters.NAMES} for _ in range(2)]
    del members[1]["LCMA"]
    with pytest.raises(ValueError, match=r"members \[7\] lack parameter 'LCMA'"):
        identifiability.stack_parameters(members, [3, 7])


# ---- Fisher information: a synthetic forward of known structure, and DALEC993


NAMES4 = ("a", "b", "c", "d")


def product_rows(theta, x, z):
    """y = a b x_t (a and b only through their product) and c z_t; d is never read."""
    return jnp.concatenate([theta[0] * theta[1] * x, theta[2] * z])


@pytest.fixture(scope="module")
def product_model():
    rng = np.random.default_rng(0)
    n_cells, n_time = 5, 12
    theta = rng.uniform(0.5, 2.0, (n_cells, 4))
    x, z = rng.normal(size=(n_cells, n_time)), rng.normal(size=(n_cells, n_time))
    jac = fisher.jacobians(product_rows, theta, np.ones(4), jnp.asarray(x), jnp.asarray(z))
    return theta, x, z, jac


def test_jacobian_in_log_space_matches_the_hand_derivatives(product_model):
    theta, x, z, jac = product_model
    assert jac.shape == (5, 24, 4)
    ab = (theta[:, 0] * theta[:, 1])[:, None]
    for p in (0, 1):  # d(a b x)/d log a = d(a b x)/d log b = a b x
        np.testing.assert_allclose(jac[:, :12, p], ab * x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jac[:, 12:, 2], theta[:, 2:3] * z, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(jac[:, :12, 2], 0.0)
    np.testing.assert_array_equal(jac[:, :, 3], 0.0)
    # a unit step spans a log range: with log_range 2 the derivative doubles
    doubled = fisher.jacobians(product_rows, theta, 2 * np.ones(4), jnp.asarray(x), jnp.asarray(z))
    np.testing.assert_allclose(doubled, 2 * jac, rtol=1e-5, atol=1e-6)


def test_product_pair_is_equifinal_unused_is_unseen_and_the_rest_identifiable(product_model):
    theta, x, z, jac = product_model
    per_cell = fisher.sensitivity(fisher.information(jac))
    s = np.sum((theta[:, 0] * theta[:, 1])[:, None] ** 2 * x**2, axis=1)
    t = np.sum(theta[:, 2:3] ** 2 * z**2, axis=1)
    np.testing.assert_allclose(per_cell.marginal[:, 0], np.sqrt(s), rtol=1e-5)
    np.testing.assert_allclose(per_cell.conditional[:, 2], np.sqrt(t + fisher.RIDGE), rtol=1e-5)
    # Pooled over the cells: a and b still enter only through their product in every cell.
    found = fisher.sensitivity(fisher.information(jac).mean(axis=0))
    np.testing.assert_allclose(found.marginal[0], np.sqrt(s.mean()), rtol=1e-5)
    np.testing.assert_allclose(found.marginal[3], 0.0)
    np.testing.assert_allclose(found.conditional[3], np.sqrt(fisher.RIDGE), rtol=1e-6)
    # with the other free, a and b are pinned down only through the ridge: sqrt(2 ridge)
    assert (found.conditional[:2] < 1e-2).all() and (found.marginal[:2] > 1.0).all()
    assert found.conditional[2] > 1.0
    np.testing.assert_allclose(abs(found.correlation[0, 1]), 1.0, atol=1e-4)
    pairs = fisher.equifinal_pairs(found, NAMES4, threshold=0.5)
    assert list(pairs.columns) == ["parameter_a", "parameter_b", "value"]
    assert pairs.values.tolist() == [["a", "b", pytest.approx(1.0, abs=1e-4)]]
    assert fisher.equifinal_pairs(found, NAMES4, threshold=1e3).empty  # nothing visible


def test_a_blurred_parameter_pairs_with_its_most_correlated_partner():
    marginal, conditional = np.array([2.0, 2.0, 2.0]), np.array([0.1, 2.0, 0.2])
    correlation = np.eye(3)
    correlation[0, 1] = correlation[1, 0] = -0.6
    correlation[0, 2] = correlation[2, 0] = 0.9
    found = fisher.Sensitivity(marginal, conditional, correlation)
    # a and c are both blurred and each other's strongest partner: one pair, listed once
    assert fisher.equifinal_pairs(found, ("a", "b", "c"), 1.0).values.tolist() == [
        ["a", "c", pytest.approx(0.9)]
    ]
    assert fisher.equifinal_pairs(found._replace(marginal=marginal / 10), "abc", 1.0).empty


def network_truth(driver, key=7):
    net = network.init_network(jax.random.key(key), 3)
    z = np.random.default_rng(key).normal(size=(driver.sizes["cell"], 3)).astype(np.float32)
    return {
        k: np.asarray(v, np.float64)
        for k, v in network.physical_parameters(
            net, z, np.zeros(driver.sizes["cell"], np.float32)
        ).items()
    }


LOSS = LossConfig.from_mapping({"lai": 1.0, "sif": 100.0, "et": 1.0, "nbe": 2.0, "som": 1e-7})


def test_dalec_observations_do_not_see_iwue_and_see_lcma():
    # IWUE is predicted but never read by DALEC993 (spec 4.1, #24): its column is zero.
    driver = gridded_driver()
    found = fisher.sensitivity(fisher.cell_information(driver, network_truth(driver), LOSS))
    index = {n: i for i, n in enumerate(parameters.NAMES)}
    assert found.marginal.shape == (driver.sizes["cell"], len(parameters.NAMES))
    np.testing.assert_array_equal(found.marginal[:, index["IWUE"]], 0.0)
    conditional = np.median(found.conditional, axis=0)
    assert conditional[index["IWUE"]] == pytest.approx(np.sqrt(fisher.RIDGE), rel=1e-3)
    assert conditional[index["IWUE"]] < fisher.DEFAULT_THRESHOLD
    assert np.median(found.marginal[:, index["LCMA"]]) > fisher.DEFAULT_THRESHOLD  # LAI = Cfol/LCMA
    assert (found.conditional <= found.marginal * (1 + 1e-6) + np.sqrt(fisher.RIDGE)).all()


def test_dalec_rows_are_in_standard_deviations_of_the_observations():
    # The loss weights only select targets; each target's rows are divided by the spread of
    # its observations, so observations spread 3 x as wide make every sensitivity 1/3.
    driver = gridded_driver(n_patches=1)
    truth = network_truth(driver)
    once = fisher.pooled_sensitivity(driver, truth, LossConfig.from_mapping({"lai": 1.0}))
    four = fisher.pooled_sensitivity(driver, truth, LossConfig.from_mapping({"lai": 4.0}))
    np.testing.assert_allclose(four.marginal, once.marginal, rtol=1e-6)
    wider = driver.assign(lai=3.0 * driver.lai)
    third = fisher.pooled_sensitivity(wider, truth, LossConfig.from_mapping({"lai": 1.0}))
    np.testing.assert_allclose(third.marginal, once.marginal / 3.0, rtol=1e-5)
    with pytest.raises(ValueError, match="no active loss target has observations"):
        fisher.pooled_sensitivity(driver, truth, LossConfig.from_mapping({"gpp_ec": 1.0}))


def test_the_spread_counts_observed_entries_on_the_targets_timescale():
    value = np.array([[1.0, 5.0], [3.0, 100.0], [np.nan, 7.0]])  # (time, cell)
    mask = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert fisher.observed_spread("lai", np.nan_to_num(value), mask, 12) == pytest.approx(
        np.std([1.0, 3.0, 5.0, 7.0])
    )
    static = np.array([[2.0, 4.0]])
    assert fisher.observed_spread("som", static, np.ones_like(static), 12) == pytest.approx(1.0)
    assert fisher.observed_spread("lai", value, np.zeros_like(value), 12) == 0.0


# ---- trained members: a tiny CONTROL network on a synthetic driver


def gridded_driver(n_patches: int = 3, slots: int = 2) -> xr.Dataset:
    """The shared synthetic driver (forcing, observations, test patch) on a gridded layout."""
    driver = tiny_driver(n_patches=n_patches, slots=slots, years=1)
    ny, nx = driver.sizes["y"], driver.sizes["x"]
    return driver.assign(
        grid_lat=("y", 38.125 + 0.25 * np.arange(ny)),
        grid_lon=("x", -108.875 + 0.25 * np.arange(nx)),
    ).assign_attrs(grid="0p25deg")


def tiny_member(number: int, key: int) -> train.Member:
    net = network.init_network(jax.random.key(key), 1, width=4, depth=1)
    info = {
        "setup": "CONTROL",
        "member": number,
        "seed": 0,
        "columns": ["null"],
        "options": {"width": 4, "depth": 1},
    }
    return train.Member(net, network.Standardizer(np.zeros(2), np.ones(2)), info)


def test_member_parameter_stack_from_networks():
    driver = gridded_driver()
    same = identifiability.member_parameter_stack(driver, [tiny_member(0, 1), tiny_member(1, 1)])
    assert same["LCMA"].dims == ("member", "cell") and same.sizes == {"member": 2, "cell": 6}
    assert list(same.member.values) == [0, 1]
    np.testing.assert_array_equal(same.lat.values, driver.lat.values)
    cv_same = identifiability.coefficient_of_variation(same)
    assert all(float(abs(cv_same[n]).max()) == 0.0 for n in parameters.NAMES)
    differ = identifiability.coefficient_of_variation(
        identifiability.member_parameter_stack(driver, [tiny_member(0, 1), tiny_member(1, 2)])
    )
    assert float(differ["LCMA"].max()) > 0


def test_identifiability_files_on_saved_members(tmp_path):
    pytest.importorskip("matplotlib", reason="figures need matplotlib")
    driver = gridded_driver()
    driver_path = tmp_path / "driver.nc"
    driver.to_netcdf(driver_path)
    files = []
    for number in range(3):
        weights, info = (
            tmp_path / f"m{number}" / "weights.npz",
            tmp_path / f"m{number}" / "member.json",
        )
        weights.parent.mkdir()
        train.save_member(tiny_member(number, 10 + number), weights, info)
        files.append((weights, info))
    selected = tmp_path / "selected.json"
    selected.write_text(json.dumps({"kept": [0, 2]}))
    out = tmp_path / "identifiability"
    identifiability.identifiability_files(
        driver_path, {"CONTROL": files}, "0p25deg", out, LOSS, selected={"CONTROL": selected}
    )
    table = pd.read_csv(out / "summary.csv")
    assert list(table.columns) == list(identifiability.COLUMNS)
    assert len(table) == 3 * len(parameters.NAMES)
    both = table.pivot(index="parameter", columns="criterion", values="identifiable")
    assert (both["combined"] == (both["cv_published"] & both["fisher"])).all()
    assert not both.loc["IWUE", "fisher"]
    medians = pd.read_csv(out / "fisher.csv")
    assert list(medians.columns) == [
        "setup",
        "parameter",
        "marginal",
        "conditional",
        "conditional_p05",
        "conditional_p95",
    ]
    assert (medians.conditional <= medians.marginal + 1e-3).all()
    assert (medians.conditional_p05 <= medians.conditional_p95).all()
    pairs = pd.read_csv(out / "equifinal_pairs.csv")
    assert list(pairs.columns) == ["setup", "parameter_a", "parameter_b", "value"]
    assert pairs.value.between(0.0, 1.0).all()
    with xr.open_dataset(out / "cv_maps.nc") as cv:
        assert cv["LCMA"].dims == ("setup", "lat", "lon")
        assert np.isnan(cv["LCMA"].sel(setup="CONTROL")[-1, -1])  # no cell there
    assert_figure(out / "median_cv")
    assert_figure(out / "fisher")
    with pytest.raises(ValueError, match="not 'PFT'"):
        identifiability.identifiability_files(driver_path, {"PFT": files}, "0p25deg", out, LOSS)
