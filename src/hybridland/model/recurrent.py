"""Pure machine-learning baselines: a per-cell LSTM and a gridded ConvLSTM (Flax linen cells).

Both map standardised inputs to standardised targets, step by step; neither knows
DALEC993. Flax's ``nnx`` API has no ConvLSTM cell, so both models use ``flax.linen``
(``OptimizedLSTMCell`` and ``ConvLSTMCell`` scanned by ``nn.RNN``), one API for both.
Arrays are batch-major as Flax's ``nn.RNN`` reads them: the LSTM takes (cell, time,
feature), the ConvLSTM (time, y, x, channel) for one grid.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class CellLSTM(nn.Module):
    """One LSTM layer per cell and a linear read-out: (cell, time, feature) -> (cell, time, out)."""

    hidden: int
    outputs: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        states = nn.RNN(nn.OptimizedLSTMCell(self.hidden))(x)
        return nn.Dense(self.outputs)(states)


class GridConvLSTM(nn.Module):
    """One ConvLSTM layer over a grid and a per-pixel read-out, with a land mask.

    (time, y, x, channel) and land (y, x) -> (time, y, x, out). Inputs off land are
    zeroed before the convolutions and outputs off land are zero, so sea pixels carry
    nothing into their land neighbours.
    """

    filters: int = 16
    outputs: int = 1
    kernel: int = 3
    unroll: int = 1  # time steps per loop iteration (a whole window: XLA's CPU loops are slow)

    @nn.compact
    def __call__(self, x: jax.Array, land: jax.Array) -> jax.Array:
        on_land = land[None, :, :, None].astype(x.dtype)
        cell = nn.ConvLSTMCell(self.filters, (self.kernel, self.kernel))
        states = nn.RNN(cell, unroll=self.unroll)((x * on_land)[None])[
            0
        ]  # one grid: a batch of one
        return nn.Dense(self.outputs)(states) * on_land


def masked_mse(prediction: jax.Array, observed: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean squared error over the pairs with mask > 0, weighted by the mask.

    A masked pair's observation (even NaN) changes neither the value nor the gradient.
    """
    gap = jnp.where(mask > 0, prediction - jnp.where(mask > 0, observed, 0.0), 0.0)
    return jnp.sum(mask * gap**2) / jnp.maximum(jnp.sum(mask), 1.0)
