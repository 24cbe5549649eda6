"""The spatialization network: static predictors -> DALEC993 parameters (spec 9).

An embedding MLP (leaky ReLU after every layer, the last included) feeds three
linear heads: 31 process parameters, 7 initial pools and 2 phenology phases.
Only the phenology head also sees the standardised hemisphere flag
``LAT_SIGMOID``. Head outputs pass through the bounded transform of
:mod:`hybridland.model.parameters`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from hybridland.model import parameters
from hybridland.model.parameters import GROUPS, Group

LEAKY_SLOPE = 0.01


class Layer(NamedTuple):
    w: Array  # (n_in, n_out)
    b: Array  # (n_out,)


class Network(NamedTuple):
    embedding: tuple[Layer, ...]
    process: Layer
    initial_pool: Layer
    phenology: Layer


def glorot_layer(key: Array, n_in: int, n_out: int, dtype=jnp.float32) -> Layer:
    """Glorot-normal (truncated, JAX convention) weights and biases of one."""
    w = jax.nn.initializers.glorot_normal()(key, (n_in, n_out), dtype)
    return Layer(w, jnp.ones(n_out, dtype))


def _dense_stack(key: Array, sizes: list[int], dtype) -> tuple[Layer, ...]:
    keys = jax.random.split(key, len(sizes) - 1)
    return tuple(glorot_layer(k, m, n, dtype) for k, m, n in zip(keys, sizes[:-1], sizes[1:]))


def init_network(
    key: Array,
    n_features: int,
    *,
    width: int = 32,
    depth: int = 3,
    head_scale: float = 1.0,
    dtype=jnp.float32,
) -> Network:
    """Initial weights for ``n_features`` standardised predictors (LAT_SIGMOID excluded).

    The four sub-networks each get their own key, split from ``key``. The three heads' weights
    are multiplied by ``head_scale`` (1: the published Glorot weights; below 1 every cell starts
    nearer the heads' bias, 1, so no parameter starts against its bound).
    """
    if n_features < 1 or width < 1 or depth < 1:
        raise ValueError(
            f"network needs n_features, width, depth >= 1, got {n_features}, {width}, {depth}"
        )
    k_emb, k_proc, k_init, k_phen = jax.random.split(key, 4)
    n_out = {g: len(parameters.group_names(g)) for g in GROUPS}

    def head(key: Array, n_in: int, group: Group) -> Layer:
        layer = _dense_stack(key, [n_in, n_out[group]], dtype)[0]
        return layer if head_scale == 1.0 else layer._replace(w=layer.w * head_scale)

    return Network(
        embedding=_dense_stack(k_emb, [n_features] + [width] * depth, dtype),
        process=head(k_proc, width, "process"),
        initial_pool=head(k_init, width, "initial_pool"),
        phenology=head(k_phen, width + 1, "phenology"),
    )


def _dense(layer: Layer, h: Array) -> Array:
    return h @ layer.w + layer.b


def embed(net: Network, features: Array) -> Array:
    """Embedding (cells, width) of standardised features (cells, n_features)."""
    h = features
    for layer in net.embedding:
        h = jax.nn.leaky_relu(_dense(layer, h), LEAKY_SLOPE)
    return h


def raw_outputs(net: Network, features: Array, lat_feature: Array) -> dict[Group, Array]:
    """Unbounded head outputs, one (cells, n_group) array per group."""
    e = embed(net, features)
    with_lat = jnp.concatenate([e, lat_feature[..., None]], axis=-1)
    return {
        "process": _dense(net.process, e),
        "initial_pool": _dense(net.initial_pool, e),
        "phenology": _dense(net.phenology, with_lat),
    }


def physical_parameters(net: Network, features: Array, lat_feature: Array) -> dict[str, Array]:
    """All 40 physical parameters by name, each (cells,)."""
    raw = raw_outputs(net, features, lat_feature)
    return parameters.merge_groups({g: parameters.to_physical(raw[g], g) for g in GROUPS})


def lat_sigmoid(lat_deg: ArrayLike) -> Array:
    """Smooth hemisphere flag 1 / (1 + exp(-latitude in degrees)) (spec 9)."""
    return jax.nn.sigmoid(jnp.asarray(lat_deg))


class Standardizer(NamedTuple):
    """Column means and population standard deviations from training cells."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, columns: ArrayLike) -> Standardizer:
        """Fit on (cells, n) training columns.

        A column that is constant over the training cells (an absent PFT in a
        small region; LAT_SIGMOID in one hemisphere) carries no information:
        its scale is set to 1 so that it standardises to 0 instead of NaN.
        """
        columns = np.asarray(columns, np.float64)
        std = columns.std(axis=0)
        return cls(columns.mean(axis=0), np.where(std > 0, std, 1.0))

    def apply(self, columns: ArrayLike) -> np.ndarray:
        return (np.asarray(columns, np.float64) - self.mean) / self.std
