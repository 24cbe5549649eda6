"""Carbon and water budgets close once the documented clip effects are counted."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from hybridland.model import forward

CARBON_POOLS = ("labile", "foliar", "root", "wood", "litter", "som")


@pytest.fixture(scope="module")
def runs(reference_cases):
    with jax.enable_x64(True):
        return [(case, forward.run(case.parameters, case.forcing)) for case in reference_cases]


def carbon_stock(case, out) -> np.ndarray:
    """Total carbon before each step and after the last, (time + 1,)."""
    initial = sum(case.parameters[n] for n in ("Clab", "Cfol", "Croot", "Cwood", "Clitter", "Csom"))
    after = sum(out[f"next_{p}_pool"].values for p in CARBON_POOLS)
    return np.concatenate([[initial], after])


def test_carbon_change_equals_net_fluxes_plus_clip(runs):
    for case, out in runs:
        dt = case.forcing.delta_t.values
        budget = (
            out.gpp
            - out.respiration_auto
            - out.respiration_hetero_litter
            - out.respiration_hetero_som
            - out.total_fire_combust
            + out.clip_carbon
        ).values * dt
        change = np.diff(carbon_stock(case, out))
        scale = np.abs(carbon_stock(case, out)).max()
        np.testing.assert_allclose(change, budget, atol=1e-11 * scale, err_msg=case.label)
        # NBE is the net flux to the atmosphere.
        np.testing.assert_allclose(
            out.nbe.values * dt, -(budget - out.clip_carbon.values * dt), atol=1e-11 * scale
        )


def test_carbon_clip_is_the_documented_leaf_litter_quirk(runs):
    """Only the foliar lower bound creates carbon; it fires in the US-Var random_s3 case."""
    clipped = {case.label: int((out.clip_carbon.values != 0).sum()) for case, out in runs}
    assert clipped["US-Var|random_s3_sd2.5"] == 35  # the reference README's count
    assert clipped["DE-Hai|typical_deciduous"] == 0
    for case, out in runs:
        at_bound = out.leaf_litter.values == 1.0
        assert np.all((out.clip_carbon.values != 0) <= at_bound), case.label


def test_water_change_equals_precip_minus_et_runoff_plus_clip(runs):
    for case, out in runs:
        dt = case.forcing.delta_t.values
        water = np.concatenate([[case.parameters["initial_water"]], out.next_water_pool.values])
        budget = (
            case.forcing.precip.values - out.ET.values - out.runoff.values + out.clip_water.values
        ) * dt
        np.testing.assert_allclose(
            np.diff(water), budget, atol=1e-11 * water.max(), err_msg=case.label
        )
        # The clip is the negative runoff kept when ET was recomputed (spec 6.11 g4).
        negative = out.runoff.values < 0
        np.testing.assert_array_equal(
            out.clip_water.values, np.where(negative, out.runoff.values, 0.0)
        )
        np.testing.assert_allclose(out.violation.values, np.maximum(-0.01 * out.runoff.values, 0.0))
    assert sum(int((out.clip_water.values != 0).sum()) for _, out in runs) > 0
