"""Gradients: finite on every reference case, and exact against finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from hybridland.model import dalec, loss, network, parameters, targets
from hybridland.model.forward import forcing_arrays
from hybridland.training import bench


def reference_loss(x: dict, met, climate, observed: dict) -> jax.Array:
    physical = parameters.merge_groups(
        {g: parameters.to_physical(x[g], g) for g in parameters.GROUPS}
    )
    out = dalec.simulate(physical, met, climate, outputs=tuple(observed)).outputs
    return sum(jnp.mean((out[k] - v) ** 2) / jnp.mean(v**2) for k, v in observed.items())


def test_gradients_finite_for_every_reference_case(reference_path, reference_cases):
    ds = xr.open_dataset(reference_path)
    grad = jax.jit(jax.grad(reference_loss))
    for i, case in enumerate(reference_cases):
        met, climate = forcing_arrays(case.forcing, np.float32)
        real = dict(zip(ds.param.values, ds.parameters_real.values[i]))
        x = {
            g: jnp.asarray([real[n] for n in parameters.group_names(g)], jnp.float32)
            for g in parameters.GROUPS
        }
        observed = {
            name: jnp.asarray(case.reference[name].sel(precision="float32").values, jnp.float32)
            for name in ("lai", "gpp", "ET", "nbe", "next_water_pool", "next_som_pool")
        }
        g = grad(x, met, climate, observed)
        for group, values in g.items():
            assert np.all(np.isfinite(values)), (case.label, group)
        assert any(np.abs(v).max() > 0 for v in g.values()), case.label


def tiny_problem():
    """3 cells x 36 months, a small network and observations for every loss term."""
    cells, months, n_features = 3, 36, 4
    rng = np.random.default_rng(7)
    met, climate = bench.synthetic_climate(rng, cells, months)
    net = network.init_network(jax.random.key(3), n_features, width=8, depth=2)
    features = jnp.asarray(rng.normal(size=(cells, n_features)))
    lat_feature = jnp.asarray(rng.normal(size=cells))
    observations = {
        name: loss.Observation(
            jnp.asarray(rng.uniform(0.1, 3.0, (months, cells))),
            jnp.asarray(rng.random((months, cells)) > 0.2, float),
        )
        for name in targets.TERMS
    }
    f64 = lambda tree: jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)
    batch = loss.Batch(features, lat_feature, f64(met), f64(climate), observations)
    return f64(net), batch


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_loss_gradient_matches_finite_differences_float64(reduction):
    weights = {name: 1.0 for name in (*targets.TERMS, *loss.CONSTRAINTS)}
    config = loss.LossConfig.from_mapping(weights, reduction=reduction, coarse_min_valid=0.5)
    with jax.enable_x64(True):
        net, batch = tiny_problem()
        value_fn = jax.jit(lambda n: loss.network_loss(n, batch, config))
        grads = jax.jit(jax.grad(lambda n: loss.network_loss(n, batch, config)))(net)
        leaves, tree = jax.tree_util.tree_flatten(net)
        rng = np.random.default_rng(11)
        for _ in range(4):
            direction = [jnp.asarray(rng.normal(size=leaf.shape)) for leaf in leaves]
            h = 1e-6
            plus = jax.tree_util.tree_unflatten(
                tree, [a + h * d for a, d in zip(leaves, direction)]
            )
            minus = jax.tree_util.tree_unflatten(
                tree, [a - h * d for a, d in zip(leaves, direction)]
            )
            numeric = (value_fn(plus) - value_fn(minus)) / (2 * h)
            analytic = sum(
                jnp.vdot(g, d) for g, d in zip(jax.tree_util.tree_leaves(grads), direction)
            )
            assert float(jnp.abs(numeric - analytic) / jnp.abs(analytic)) < 1e-5
