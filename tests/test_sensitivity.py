"""Perturbing the truth and rerunning DALEC: which parameters the observations can see."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
from drivers import tiny_driver, truth_parameters

from hybridland.analysis import sensitivity
from hybridland.model import network, parameters
from hybridland.training import evaluate


def test_perturbed_moves_by_the_share_of_the_log_range_and_stays_in_bounds():
    info = parameters.BY_NAME["LCMA"]  # 5 .. 200 gC m-2
    low, high = sensitivity.perturbed(np.array([50.0, 5.0, 200.0]), "LCMA", 0.1)
    factor = 40.0**0.1
    np.testing.assert_allclose(low, [50.0 / factor, info.minimum, 200.0 / factor])
    np.testing.assert_allclose(high, [50.0 * factor, 5.0 * factor, info.maximum])


def test_target_changes_by_hand():
    observed = np.array([1.0, 3.0])  # SD 1
    down = {"lai": (observed, np.array([0.0, 0.0])), "flat": (np.ones(2), np.zeros(2))}
    up = {"lai": (observed, np.array([2.0, 4.0])), "flat": (np.ones(2), np.ones(2))}
    changes = sensitivity.target_changes(down, up)
    assert changes["lai"] == pytest.approx(np.sqrt((4 + 16) / 2) / 2)
    assert np.isnan(changes["flat"])


def test_visible_takes_the_largest_target_and_fills_absent_parameters():
    table = pd.DataFrame(
        {
            "parameter": ["LCMA", "LCMA", "Q10"],
            "target": ["lai", "nbe", "nbe"],
            "sensitivity": [0.01, 0.2, 0.04],
        }
    )
    shown = sensitivity.visible(table, threshold=0.05)
    assert list(shown.index) == list(parameters.NAMES)
    assert shown["LCMA"] and not shown["Q10"] and not shown["IWUE"]


@pytest.fixture(scope="module")
def table():
    driver = tiny_driver(n_patches=3, slots=4, years=2)
    net = network.init_network(jax.random.key(7), 3)
    z = np.random.default_rng(7).normal(size=(driver.sizes["cell"], 3)).astype(np.float32)
    truth = {
        k: np.asarray(v, np.float64)
        for k, v in network.physical_parameters(
            net, z, np.zeros(driver.sizes["cell"], np.float32)
        ).items()
    }
    return sensitivity.sensitivities(driver, truth, step=0.05)


def test_a_parameter_the_model_never_reads_is_invisible(table):
    iwue = table[table.parameter == "IWUE"]
    assert set(iwue.target) == {"lai", "sif", "et", "nbe", "som"}
    assert (iwue.sensitivity == 0.0).all()


def test_sif_parameters_reach_only_sif(table):
    alpha = table[table.parameter == "sif_alpha"].set_index("target").sensitivity
    assert alpha["sif"] > 0.01
    assert (alpha.drop("sif") == 0.0).all()


def test_leaf_carbon_per_area_moves_lai(table):
    lcma = table[table.parameter == "LCMA"].set_index("target").sensitivity
    assert lcma["lai"] > 0.05


def test_the_truth_that_made_the_observations_scores_one_and_a_wrong_one_does_not():
    driver = tiny_driver()  # observations: DALEC on truth_parameters, without noise
    truth = {k: np.asarray(v) for k, v in truth_parameters(driver).items()}
    table = sensitivity.truth_metrics(driver, truth, "tiny")
    assert list(table.columns) == list(evaluate.METRIC_COLUMNS)
    assert set(table.setup) == set(table.member) == {"truth"} and set(table.grid) == {"tiny"}
    pooled = table[table.metric == evaluate.POOLED].set_index(["variable", "split"]).r2_score
    assert {s for _, s in pooled.index} == {"test", "all"}
    np.testing.assert_allclose(pooled.loc[["lai", "sif", "et"]], 1.0, atol=1e-4)
    wrong = sensitivity.truth_metrics(driver, {**truth, "LCMA": 0.5 * truth["LCMA"]}, "tiny")
    lai = wrong[(wrong.metric == evaluate.POOLED) & (wrong.variable == "lai")].r2_score
    assert (lai < 0.9).all()
