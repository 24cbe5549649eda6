"""The loss: hand-computed terms, the 80% rule for coarse terms, switching terms off."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hybridland.model import loss, targets
from hybridland.model.loss import LossConfig, Observation


def obs(value, mask) -> Observation:
    return Observation(jnp.asarray(value, jnp.float32), jnp.asarray(mask, jnp.float32))


def test_cell_error_by_hand():
    model = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    o = obs([[0.0, 2.0], [1.0, -9999.0]], [[1.0, 1.0], [0.5, 0.0]])
    assert float(loss.cell_error(model, o, "sum")) == 1.0 + 0.0 + 0.5 * 4.0
    assert float(loss.cell_error(model, o, "mean")) == pytest.approx(3.0 / 2.5)


def test_patch_error_uses_slot_means_and_the_valid_fraction_threshold():
    # 2 times x 5 slots; at t=0 all 5 valid, at t=1 only 3 of 5 (60% < 80%).
    model = jnp.array([[1.0, 1.0, 1.0, 1.0, 6.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    o = obs(
        [[0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]], [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    )
    strict = LossConfig.from_mapping({"nbe": 1.0}, reduction="sum", coarse_min_valid=0.8)
    assert float(loss.patch_error(model, o, strict)) == pytest.approx(2.0**2 * 1.0)
    published = LossConfig.from_mapping({"nbe": 1.0}, reduction="sum", coarse_min_valid=0.0)
    # t=1: slot mean of masked model 6/5, weighted by valid fraction 3/5.
    assert float(loss.patch_error(model, o, published)) == pytest.approx(4.0 + (6 / 5) ** 2 * 0.6)


def test_annual_blocks_and_product_mask():
    x = jnp.arange(30.0)[:, None]
    np.testing.assert_array_equal(targets.annual(x, 12)[:, 0], [5.5, 17.5])
    mask = jnp.ones((24, 1)).at[13, 0].set(0.0)
    np.testing.assert_array_equal(targets.annual_mask(mask, 12)[:, 0], [1.0, 0.0])


def test_edc_worked_example():
    """Every flux total 5, pools flat at their initial 100: r_j = n_in / n_out per pool."""
    flat = {f"next_{p}_pool": jnp.full((24, 1), 100.0) for p in loss.EDC_POOLS}
    totals = {
        name: jnp.full(1, 5.0) for ins, outs in loss.EDC_FLUXES.values() for name in ins + outs
    }
    pools0 = [jnp.full(1, 100.0)] * 7
    ratios = {
        "labile": 1 / 3,
        "foliar": 2 / 3,
        "root": 1 / 3,
        "wood": 1 / 3,
        "litter": 5 / 4,
        "som": 2.0,
    }

    def expected(r):
        return sum((abs(np.log(x + 1e-3)) / np.log(2)) ** 2 for x in r.values())

    assert float(loss.edc_penalty(flat, totals, pools0, 12)[0]) == pytest.approx(
        expected(ratios), rel=1e-5
    )
    # Only the January values (steps 11 and 23) enter the pool mean.
    som = jnp.full((24, 1), 100.0).at[11, 0].set(300.0).at[23, 0].set(500.0).at[5, 0].set(1e6)
    ratios["som"] = 2.0 * 4.0
    penalty = loss.edc_penalty(dict(flat, next_som_pool=som), totals, pools0, 12)
    assert float(penalty[0]) == pytest.approx(expected(ratios), rel=1e-5)


@pytest.fixture(scope="module")
def batch():
    from hybridland.training import bench

    _, b = bench.synthetic_batch(0, 8, 24)
    return b


def test_switching_a_term_off_removes_exactly_its_contribution(batch):
    import jax

    from hybridland.model import network

    net = network.init_network(jax.random.key(0), batch.features.shape[-1])
    params = network.physical_parameters(net, batch.features, batch.lat_feature)
    full = LossConfig.from_mapping({"lai": 10.0, "nbe": 3.0, "edc": 2.0, "violation": 1.0})
    terms = loss.loss_terms(params, batch.met, batch.climate, batch.observations, full)
    assert set(terms) == {"lai", "nbe", "edc", "violation"}
    without = LossConfig.from_mapping({"lai": 10.0, "nbe": 0.0, "edc": 2.0, "violation": 1.0})
    assert "nbe" not in without.active and "nbe" not in without.observed()
    a = loss.total_loss(params, batch.met, batch.climate, batch.observations, full)
    b = loss.total_loss(params, batch.met, batch.climate, batch.observations, without)
    assert float(a - b) == pytest.approx(3.0 * float(terms["nbe"]), rel=1e-4)
    assert without.outputs() == tuple(
        sorted({"lai", "violation", *(f"next_{p}_pool" for p in loss.EDC_POOLS)})
    )


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match=re.escape("unknown loss terms ['gpp']")):
        LossConfig.from_mapping({"gpp": 1.0})
    with pytest.raises(
        ValueError, match=re.escape("loss weights must be finite and >= 0, got {'lai': -1.0}")
    ):
        LossConfig.from_mapping({"lai": -1.0})
    with pytest.raises(ValueError, match="loss reduction must be 'sum' or 'mean'"):
        LossConfig.from_mapping({"lai": 1.0}, reduction="median")
    config = LossConfig.from_mapping({"lai": 1.0, "nbe_annual": 1.0, "ewt": 1.0})
    with pytest.raises(ValueError, match=re.escape("loss terms need observations ['ewt', 'nbe']")):
        loss.check_observations({"lai": None}, config)


def test_group_sparsity_by_hand_and_padding_rows_get_no_gradient():
    w = jnp.array([[3.0, 4.0], [0.0, 0.0], [1.0, 2.0], [2.0, 0.0], [0.0, 0.0]])  # last row: padding
    groups = jnp.array(
        [[1.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]]
    )  # group A: rows 0-1 (norm 5); group B: rows 2-3 (norm 3); an empty group
    assert float(loss.group_sparsity(w, groups)) == pytest.approx(2**0.5 * 5 + 2**0.5 * 3)
    grad = jax.grad(loss.group_sparsity)(w, groups)
    np.testing.assert_allclose(grad[0], 2**0.5 * np.array([3.0, 4.0]) / 5, rtol=1e-6)
    assert np.all(np.isfinite(grad)) and np.all(grad[4] == 0.0)
    zero = jax.grad(loss.group_sparsity)(jnp.zeros_like(w), groups)  # every group at 0
    assert np.all(zero == 0.0)
