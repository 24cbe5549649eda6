"""Time-varying parameters and the injection points of DALEC993, and the dynamic networks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hybridland.model import dalec, dynamic, forward, parameters

DYNAMIC = ("canopy_efficiency", "field_capacity", "wilting_point_frac", "uWUE")
CARBON_POOLS = ("labile", "foliar", "root", "wood", "litter", "som")


def _inputs(case, dtype):
    met, climate = forward.forcing_arrays(case.forcing, dtype)
    params = {k: jnp.asarray(v, dtype) for k, v in case.parameters.items()}
    return params, met, climate


def _hook_inputs(met: dalec.Met) -> jax.Array:
    x = dynamic.forcing_columns(met)
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1.0)


@pytest.fixture(scope="module")
def case(reference_cases):
    return reference_cases[0]


def test_constant_time_varying_parameters_reproduce_the_static_run(reference_cases):
    for case in reference_cases[:3]:
        params, met, climate = _inputs(case, np.float32)
        steps = met.days.shape[0]
        constant = {n: jnp.broadcast_to(params[n], (steps,)) for n in DYNAMIC}
        static = dalec.simulate(params, met, climate).outputs
        varying = dalec.simulate(params, met, climate, dynamic=constant).outputs
        for name in dalec.OUTPUTS:
            np.testing.assert_allclose(
                varying[name], static[name], rtol=2e-6, atol=1e-6, err_msg=f"{case.label} {name}"
            )


def test_a_time_varying_parameter_acts_from_its_month_on(case):
    params, met, climate = _inputs(case, np.float32)
    static = dalec.simulate(params, met, climate).outputs
    month = 30 + int(np.argmax(np.asarray(static["gpp"][30:]) > 0.1))  # a growing month
    steps = met.days.shape[0]
    efficiency = jnp.full((steps,), params["canopy_efficiency"]).at[month:].mul(1.5)
    varying = dalec.simulate(params, met, climate, dynamic={"canopy_efficiency": efficiency})
    gpp = varying.outputs["gpp"]
    np.testing.assert_allclose(gpp[:month], static["gpp"][:month], rtol=2e-6)
    assert np.all(gpp[month] > static["gpp"][month])


def test_initial_pools_cannot_vary_in_time(case):
    params, met, climate = _inputs(case, np.float32)
    with pytest.raises(ValueError, match=r"time-varying parameters \['Cfol'\] must be"):
        dalec.simulate(params, met, climate, dynamic={"Cfol": met.days * 0 + 100.0})


def test_a_beta_hook_returning_dalecs_beta_reproduces_the_static_run(reference_cases):
    own = dalec.Hooks(beta=lambda water, p, x: dalec.default_beta(water, p))
    for case in reference_cases[:3]:
        params, met, climate = _inputs(case, np.float32)
        static = dalec.simulate(params, met, climate).outputs
        hooked = dalec.simulate(params, met, climate, hooks=own, hook_inputs=_hook_inputs(met))
        for name in dalec.OUTPUTS:
            np.testing.assert_allclose(
                hooked.outputs[name], static[name], rtol=2e-6, atol=1e-6, err_msg=name
            )


def test_beta_network_sets_beta_within_zero_and_one(case):
    params, met, climate = _inputs(case, np.float32)
    x = _hook_inputs(met)
    graph, state = dynamic.create("beta-nn", jax.random.key(1), x.shape[-1], 8)
    hooks = dynamic.beta_hook(nnx.merge(graph, state))
    out = dalec.simulate(params, met, climate, hooks=hooks, hook_inputs=x).outputs
    beta = np.asarray(out["beta"])
    assert np.all((beta > 0.0) & (beta < 1.0))
    assert np.ptp(beta) > 0.0
    static = dalec.simulate(params, met, climate).outputs
    assert not np.allclose(out["gpp"], static["gpp"])


@pytest.mark.parametrize("index", [0, 1, 2])
def test_gppet_network_keeps_carbon_and_water_balances(reference_cases, index):
    case = reference_cases[index]
    with jax.enable_x64(True):
        params, met, climate = _inputs(case, np.float64)
        x = _hook_inputs(met)
        graph, state = dynamic.create("gppet-nn", jax.random.key(index), x.shape[-1], 8)
        state = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float64), state)
        net = nnx.merge(graph, state)
        out = dalec.simulate(
            params,
            met,
            climate,
            outputs=dalec.OUTPUTS + dalec.DIAGNOSTICS,
            hooks=dynamic.gpp_et_hook(net),
            hook_inputs=x,
        ).outputs
        out = {k: np.asarray(v) for k, v in out.items()}
    dt = np.asarray(met.delta_t)
    carbon0 = sum(case.parameters[n] for n in parameters.INITIAL_POOLS[:6])
    carbon = np.concatenate([[carbon0], sum(out[f"next_{p}_pool"] for p in CARBON_POOLS)])
    budget = (
        out["gpp"]
        - out["respiration_auto"]
        - out["respiration_hetero_litter"]
        - out["respiration_hetero_som"]
        - out["total_fire_combust"]
        + out["clip_carbon"]
    ) * dt
    np.testing.assert_allclose(np.diff(carbon), budget, atol=1e-11 * carbon.max())
    water = np.concatenate([[case.parameters["initial_water"]], out["next_water_pool"]])
    water_budget = (np.asarray(met.precip) - out["ET"] - out["runoff"] + out["clip_water"]) * dt
    np.testing.assert_allclose(np.diff(water), water_budget, atol=1e-11 * water.max())
    # The network's GPP feeds allocation: the four allocations and Ra add up to it.
    allocated = sum(
        out[k]
        for k in (
            "respiration_auto",
            "leaf_production",
            "labile_production",
            "root_production",
            "wood_production",
        )
    )
    np.testing.assert_allclose(allocated, out["gpp"], rtol=1e-12, atol=1e-12)
    assert np.all(out["gpp"] >= 0.0) and np.all(out["ET"] >= 0.0)
    assert out["gpp"].max() > 0.0


def test_parameter_lstm_starts_at_the_static_value_and_stays_in_bounds(case):
    _, met, _ = _inputs(case, np.float32)
    x = _hook_inputs(met)[:, None, :].repeat(3, axis=1)  # (time, 3 cells, k)
    names = ("canopy_efficiency", "wilting_point_frac")
    graph, state = dynamic.create("dyn", jax.random.key(0), x.shape[-1], 8, len(names))
    static_raw = jnp.array([[-1.0, 0.5], [0.0, 0.0], [3.0, -2.0]], jnp.float32)
    lstm = nnx.merge(graph, state)
    start = dynamic.dynamic_parameters(lstm, x, static_raw, names)
    expected = parameters.to_physical_named(static_raw, names)
    for i, name in enumerate(names):
        assert start[name].shape == (met.days.shape[0], 3)
        np.testing.assert_allclose(start[name], jnp.broadcast_to(expected[:, i], (x.shape[0], 3)))
    # With a non-zero head the parameters vary in time, inside their bounds.
    lstm.head.kernel[...] = jnp.full_like(lstm.head.kernel[...], 40.0)
    moved = dynamic.dynamic_parameters(lstm, x, static_raw, names)
    lo, hi = parameters.named_bounds(names)
    for i, name in enumerate(names):
        values = np.asarray(moved[name])
        assert np.all((values >= lo[i]) & (values <= hi[i]))
        assert np.ptp(values[:, 1]) > 0.0


def test_unknown_kind_and_parameter_names_are_refused():
    with pytest.raises(ValueError, match="unknown dynamic hybrid 'lstm'"):
        dynamic.create("lstm", jax.random.key(0), 3, 4)
    with pytest.raises(ValueError, match=r"unknown parameters \['canopy'\]"):
        parameters.to_physical_named(jnp.zeros(1), ["canopy"])
