"""The spatialization network: shapes, initialisation, latitude routing, determinism."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hybridland.model import network, parameters


def test_shapes_and_initialisation():
    net = network.init_network(jax.random.key(0), 20)
    assert [layer.w.shape for layer in net.embedding] == [(20, 32), (32, 32), (32, 32)]
    assert (net.process.w.shape, net.initial_pool.w.shape, net.phenology.w.shape) == (
        (32, 31),
        (32, 7),
        (33, 2),
    )
    for layer in jax.tree_util.tree_leaves(net)[1::2]:
        np.testing.assert_array_equal(layer, 1.0)  # all biases start at 1
    w = np.asarray(network.init_network(jax.random.key(1), 200, width=300).embedding[0].w)
    assert abs(w.std() - np.sqrt(2 / 500)) < 0.02 * np.sqrt(2 / 500)  # Glorot variance
    assert np.abs(w).max() <= 2 * np.sqrt(2 / 500) / 0.87962566103423978 + 1e-6  # truncated at 2 sd
    params = network.physical_parameters(net, jnp.zeros((5, 20)), jnp.zeros(5))
    assert set(params) == set(parameters.NAMES) and all(v.shape == (5,) for v in params.values())


def test_width_and_depth_come_from_arguments():
    net = network.init_network(jax.random.key(0), 3, width=8, depth=5)
    assert [layer.w.shape for layer in net.embedding] == [(3, 8)] + [(8, 8)] * 4
    assert net.phenology.w.shape == (9, 2)
    raw = network.raw_outputs(net, jnp.ones((4, 3)), jnp.ones(4))
    assert {g: r.shape for g, r in raw.items()} == {
        "process": (4, 31),
        "initial_pool": (4, 7),
        "phenology": (4, 2),
    }


def test_latitude_reaches_only_the_phenology_head():
    net = network.init_network(jax.random.key(2), 6)
    features = jax.random.normal(jax.random.key(3), (10, 6))
    for group in ("process", "initial_pool", "phenology"):
        jac = jax.jacobian(lambda lat, g=group: network.raw_outputs(net, features, lat)[g])(
            jnp.zeros(10)
        )
        if group == "phenology":
            assert np.abs(jac).max() > 0
        else:
            np.testing.assert_array_equal(jac, 0.0)


def test_same_key_same_weights_different_key_different():
    a, b = network.init_network(jax.random.key(5), 4), network.init_network(jax.random.key(5), 4)
    c = network.init_network(jax.random.key(6), 4)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.embedding[0].w, c.embedding[0].w)


def test_standardizer_uses_population_std_and_keeps_constant_columns_finite():
    columns = np.array([[1.0, 5.0], [3.0, 5.0]])
    s = network.Standardizer.fit(columns)
    np.testing.assert_array_equal(s.apply(columns), [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(
        network.lat_sigmoid(jnp.array([0.0, 90.0, -90.0])), [0.5, 1.0, 0.0], atol=1e-30
    )


def test_head_scale_shrinks_only_the_heads_weights():
    key = jax.random.key(3)
    published, scaled = network.init_network(key, 5), network.init_network(key, 5, head_scale=0.1)
    for a, b in zip(published.embedding, scaled.embedding):
        np.testing.assert_array_equal(a.w, b.w)
    for head in ("process", "initial_pool", "phenology"):
        a, b = getattr(published, head), getattr(scaled, head)
        np.testing.assert_allclose(b.w, 0.1 * a.w, rtol=1e-6)
        np.testing.assert_array_equal(a.b, b.b)
