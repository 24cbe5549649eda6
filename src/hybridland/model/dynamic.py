"""Dynamic hybrids: small Flax networks that act inside DALEC993 month by month.

Three kinds, each a Flax NNX module (Flax's ``nnx.LSTMCell`` and ``nnx.Linear``):

- ``dyn``: an LSTM reads the monthly forcing (and static predictors) and sets
  selected parameters each month. Its head adds an offset to the parameters'
  unbounded reals from the static part, mapped through the same bounded
  transform as the static network (:func:`hybridland.model.parameters.to_physical_named`);
  the head starts at zero, so training starts from the static hybrid.
- ``beta-nn``: an MLP of the start-of-step relative water ``W / W_fc`` and the
  month's forcing replaces the water-stress factor (sigmoid output, in [0, 1]).
- ``gppet-nn``: an MLP of LAI, relative water and the month's forcing replaces
  GPP and ET together (softplus outputs; GPP is scaled by the canopy's light
  interception ``1 - exp(-k LAI)`` so that no leaves make no GPP). DALEC's
  allocation, turnover and water bucket take them from there.

Modules are used functionally: ``nnx.split`` gives a graph definition and a state
(a pytree that optax and ``jax.vmap`` handle) and ``nnx.merge`` rebuilds the module
inside a traced function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jax import Array

from hybridland.model import dalec, parameters

Kind = Literal["dyn", "beta-nn", "gppet-nn"]
KINDS: tuple[Kind, ...] = ("dyn", "beta-nn", "gppet-nn")

FORCING_COLUMNS = ("t_min", "t_max", "rad", "vpd", "precip", "co2", "sin_doy", "cos_doy")
"""Per-month inputs of the networks (standardised by the caller)."""

GPP_SCALE = 5.0  # gC m-2 d-1 per unit softplus output
ET_SCALE = 2.0  # mm d-1 per unit softplus output
LIGHT_EXTINCTION = 0.5  # k of the light-interception factor of gppet-nn


def forcing_columns(met: dalec.Met) -> Array:
    """The month's forcing as network inputs, (time, *cells, len(FORCING_COLUMNS)), unscaled."""
    angle = 2.0 * jnp.pi * met.doy / 365.25
    columns = (met.t_min, met.t_max, met.rad, met.vpd, met.precip, met.co2)
    return jnp.stack(columns + (jnp.sin(angle), jnp.cos(angle)), axis=-1)


class ParameterLSTM(nnx.Module):
    """LSTM over monthly inputs -> offsets of the selected parameters' unbounded reals."""

    def __init__(self, n_inputs: int, hidden: int, n_parameters: int, *, rngs: nnx.Rngs):
        self.cell = nnx.LSTMCell(n_inputs, hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, n_parameters, kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        """Offsets (time, *cells, n_parameters) from inputs (time, *cells, n_inputs)."""
        zeros = jnp.zeros(x.shape[1:-1] + (self.cell.hidden_features,), x.dtype)

        def month(carry, x_t):
            carry, h = self.cell(carry, x_t)
            return carry, self.head(h)

        return jax.lax.scan(month, (zeros, zeros), x)[1]


class MLP(nnx.Module):
    """Two tanh hidden layers and a linear output."""

    def __init__(self, n_inputs: int, hidden: int, n_outputs: int, *, rngs: nnx.Rngs):
        self.layers = nnx.List(
            [nnx.Linear(n_inputs, hidden, rngs=rngs), nnx.Linear(hidden, hidden, rngs=rngs)]
        )
        self.out = nnx.Linear(hidden, n_outputs, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        for layer in self.layers:
            x = jnp.tanh(layer(x))
        return self.out(x)


def create(kind: Kind, key: Array, n_inputs: int, hidden: int, n_parameters: int = 0):
    """(graphdef, state) of a kind's network; ``n_inputs`` counts the per-month inputs."""
    rngs = nnx.Rngs(key)
    if kind == "dyn":
        if n_parameters < 1:
            raise ValueError("the dyn hybrid needs at least one dynamic parameter")
        module = ParameterLSTM(n_inputs, hidden, n_parameters, rngs=rngs)
    elif kind == "beta-nn":
        module = MLP(n_inputs + 1, hidden, 1, rngs=rngs)
    elif kind == "gppet-nn":
        module = MLP(n_inputs + 2, hidden, 2, rngs=rngs)
    else:
        raise ValueError(f"unknown dynamic hybrid {kind!r}; known: {list(KINDS)}")
    return nnx.split(module)


def dynamic_parameters(
    lstm: ParameterLSTM, inputs: Array, static_raw: Array, names: Sequence[str]
) -> dict[str, Array]:
    """Each named parameter per month, (time, *cells), within its bounds.

    ``static_raw`` (*cells, n) are the unbounded reals the static part gives them.
    """
    raw = static_raw + lstm(inputs)
    physical = parameters.to_physical_named(raw, names)
    return {name: physical[..., i] for i, name in enumerate(names)}


def beta_hook(net: MLP) -> dalec.Hooks:
    """Water stress from relative water and the month's inputs, in [0, 1]."""

    def beta(water: Array, params: dalec.Params, x: Array) -> Array:
        relative = (water / params["field_capacity"])[..., None]
        return jax.nn.sigmoid(net(jnp.concatenate([relative, x], axis=-1))[..., 0])

    return dalec.Hooks(beta=beta)


def gpp_et_hook(net: MLP) -> dalec.Hooks:
    """GPP and ET (both >= 0) from LAI, relative water and the month's inputs."""

    def gpp_et(lai: Array, water: Array, params: dalec.Params, x: Array) -> tuple[Array, Array]:
        relative = water / params["field_capacity"]
        out = net(jnp.concatenate([lai[..., None], relative[..., None], x], axis=-1))
        light = 1.0 - jnp.exp(-LIGHT_EXTINCTION * lai)
        return GPP_SCALE * jax.nn.softplus(out[..., 0]) * light, ET_SCALE * jax.nn.softplus(
            out[..., 1]
        )

    return dalec.Hooks(gpp_et=gpp_et)
