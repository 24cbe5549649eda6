"""Identifiability the observations see: Fisher information of the assimilated targets.

At given parameters (the learned ensemble mean; never the truth) the model
quantities the loss compares with observations (:mod:`hybridland.model.targets`)
are differentiated with respect to every parameter in normalised log space,
u_p = log(theta_p) / log(max_p / min_p), so a unit move crosses the whole range.
Each cell's rows are its observed entries of every active loss target, scaled by
sqrt(m_t / sum_t m_t) / s_k (observation weight m_t; s_k the spread, standard deviation,
of target k's observations in the driver, on the target's timescale): J^T J is then the
Gauss-Newton curvature of the cell's loss (mean reduction) with weights 1 / s_k^2. The information
of the sampled cells is pooled, F = mean over cells of J^T J (a move of p shared
by the cells, as the network's smooth maps move it), and

    marginal_p = sqrt(F_pp),  conditional_p = 1 / sqrt([(F + ridge I)^-1]_pp)

The marginal sensitivity is how much the observations move with p alone; the
conditional one (Cramer-Rao) how much they move when the others re-fit to
compensate. A parameter seen alone but not with the others free is seen only
together with another (equifinal): it pairs with the parameter its estimate
correlates with most. Per cell, with all 40 parameters free in each cell, almost
every parameter would be blurred; pooling asks what the data of the whole region
pin down. Patch-level targets (NBE, fire, EWT) count per cell, as if the cell
were its own patch. Both are in standard deviations of the observations per full log
range, the scale on which :mod:`hybridland.analysis.sensitivity` calls a parameter
visible, whatever the loss weights (which only select the active targets here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from hybridland.model import dalec, forward, parameters, targets
from hybridland.model.loss import LossConfig
from hybridland.model.targets import TERMS
from hybridland.training import batches

logger = logging.getLogger(__name__)

# A parameter is identifiable when, with every other parameter free to compensate, moving
# it across its whole log range still moves the observations by one SD of their spread:
# the scale at which analysis.sensitivity calls a parameter visible (0.05 SD for a step of
# 0.05). The conditional sensitivity never exceeds the marginal one, so a parameter that
# is identifiable is also visible on that scale.
DEFAULT_THRESHOLD = 1.0
# Prior information added to F before inversion: a prior SD of 1000 log ranges, so it only
# keeps F invertible where a parameter is not read at all.
RIDGE = 1e-6
# Resamples of the sampled cells (with replacement) behind the conditional sensitivity's
# interval: how much a verdict rests on which cells the sample drew.
RESAMPLES = 200
INTERVAL = (5.0, 95.0)  # percentiles of the interval
PAIR_COLUMNS = ("setup", "parameter_a", "parameter_b", "value")

Rows = Callable[..., jax.Array]  # (theta (P,), *cell arguments) -> weighted rows (R,)


class Sensitivity(NamedTuple):
    """Per parameter (P,) sensitivities and the (P, P) posterior correlation (with leading axes
    when computed from several information matrices at once)."""

    marginal: np.ndarray
    conditional: np.ndarray
    correlation: np.ndarray


def log_ranges(names: Sequence[str] = parameters.NAMES) -> np.ndarray:
    """log(max / min) of each named parameter: the physical size of a unit step in u."""
    return np.array(
        [np.log(parameters.BY_NAME[n].maximum / parameters.BY_NAME[n].minimum) for n in names]
    )


def jacobians(rows: Rows, theta: Any, log_range: Any, *cell_args: Any) -> np.ndarray:
    """d rows / d u at ``theta`` for every cell, (cell, R, P).

    ``theta`` (cell, P) are physical parameters, ``cell_args`` pytrees with a leading
    cell axis; ``rows`` sees one cell: theta (P,) and the cell's slices of ``cell_args``.
    """
    theta = jnp.asarray(theta)
    scale = jnp.asarray(log_range, theta.dtype)

    def one_cell(point, *args):
        moved = lambda du: rows(point * jnp.exp(du * scale), *args)
        return jax.jacfwd(moved)(jnp.zeros_like(point))

    return np.asarray(jax.jit(jax.vmap(one_cell))(theta, *cell_args), np.float64)


def information(jacobian: np.ndarray) -> np.ndarray:
    """Fisher information J^T J of each cell, (cell, P, P), in float64."""
    j = np.asarray(jacobian, np.float64)
    return np.einsum("crp,crq->cpq", j, j)


def sensitivity(fisher: np.ndarray, ridge: float = RIDGE) -> Sensitivity:
    """Marginal and conditional sensitivities and the correlation of (F + ridge I)^-1."""
    size = fisher.shape[-1]
    covariance = np.linalg.inv(fisher + ridge * np.eye(size))
    variance = np.diagonal(covariance, axis1=-2, axis2=-1)
    sd = np.sqrt(variance)
    return Sensitivity(
        marginal=np.sqrt(np.diagonal(fisher, axis1=-2, axis2=-1)),
        conditional=1.0 / sd,
        correlation=covariance / (sd[..., :, None] * sd[..., None, :]),
    )


def conditional_interval(
    cell_fisher: np.ndarray, rng: np.random.Generator, resamples: int = RESAMPLES
) -> np.ndarray:
    """Percentiles :data:`INTERVAL` (2, P) of the conditional sensitivity of the pooled
    information over ``resamples`` resamples of the cells (``cell_fisher``: (cell, P, P))."""
    n_cells = cell_fisher.shape[0]
    counts = np.stack(
        [
            np.bincount(rng.integers(0, n_cells, n_cells), minlength=n_cells)
            for _ in range(resamples)
        ]
    )
    pooled = np.einsum("rc,cpq->rpq", counts / n_cells, cell_fisher)
    return np.percentile(sensitivity(pooled).conditional, INTERVAL, axis=0)


def equifinal_pairs(found: Sensitivity, names: Sequence[str], threshold: float) -> pd.DataFrame:
    """Pairs ``parameter_a, parameter_b, value`` of parameters seen only together.

    A parameter visible alone (marginal >= threshold) but not with the others free
    (conditional < threshold) pairs with the parameter its estimate correlates with most;
    ``value`` is that |correlation| in (F + ridge)^-1. a and b in table order, each pair once.
    """
    order = {n: i for i, n in enumerate(names)}
    blurred = (found.marginal >= threshold) & (found.conditional < threshold)
    others = np.abs(found.correlation) * (1.0 - np.eye(len(names)))
    pairs: dict[tuple[str, str], float] = {}
    for p in np.flatnonzero(blurred):
        q = int(np.argmax(others[p]))
        key = tuple(sorted((names[p], names[q]), key=order.get))
        pairs[key] = max(pairs.get(key, 0.0), float(others[p, q]))
    rows = sorted(
        ((a, b, v) for (a, b), v in pairs.items()), key=lambda r: (order[r[0]], order[r[1]])
    )
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS[1:]))


# ---- DALEC993: the assimilated observations of one cell


def assimilated(config: LossConfig, observed: Sequence[str]) -> list[str]:
    """Active loss targets whose observation the driver holds."""
    return [name for name in config.active if name in TERMS and targets.observed(name) in observed]


def observed_spread(name: str, value: np.ndarray, mask: np.ndarray, steps_per_year: int) -> float:
    """Standard deviation of target ``name``'s observed values ((time, cell), mask > 0 where
    observed) on the target's timescale, as the loss compares them; 0 when none is observed."""
    _, on_scale, kept = targets.on_timescale(name, value, value, mask, steps_per_year)
    observed = np.asarray(on_scale)[np.asarray(kept) > 0]
    return float(np.std(observed)) if observed.size else 0.0


def spread_weights(
    observations: Mapping[str, tuple[np.ndarray, np.ndarray]], names: Sequence[str], spy: int
) -> dict[str, float]:
    """1 / spread^2 of each named target's observations (``observations``: the driver's
    (value, mask) by observed name); targets without spread are left out."""
    spreads = {n: observed_spread(n, *observations[targets.observed(n)], spy) for n in names}
    return {n: 1.0 / s**2 for n, s in spreads.items() if s > 0}


def observation_rows(
    weights: Mapping[str, float], steps_per_year: int
) -> Callable[[jax.Array, dalec.Met, dalec.Climate, dict[str, jax.Array]], jax.Array]:
    """The rows function of one cell: every observed entry of every target, weighted
    sqrt(w m / sum m) (``weights``: w by target), from theta (P,), Met (time,), Climate ()
    and masks (time,)."""
    outputs = tuple(sorted({o for name in weights for o in TERMS[name].outputs}))

    def rows(theta, met, climate, masks):
        params = dict(zip(parameters.NAMES, theta))
        out = dalec.simulate(params, met, climate, outputs=outputs).outputs
        pieces = []
        for name, weight in weights.items():
            mask = masks[targets.observed(name)]
            model = targets.model_quantity(name, out, mask)
            model, _, kept = targets.on_timescale(name, model, mask, mask, steps_per_year)
            scale = jnp.sqrt(weight * kept / jnp.maximum(jnp.sum(kept), 1e-12))
            pieces.append(jnp.ravel(scale * model))
        return jnp.concatenate(pieces)

    return rows


def cell_information(
    driver: xr.Dataset, theta: Mapping[str, np.ndarray], config: LossConfig
) -> np.ndarray:
    """Fisher information (cell, P, P) of every driver cell's assimilated observations at
    ``theta`` (name -> (cell,)); cells with a non-finite Jacobian are left out."""
    observations = batches.observations(driver)
    masks = {k: mask for k, (_, mask) in observations.items()}
    weights = spread_weights(observations, assimilated(config, tuple(masks)), config.steps_per_year)
    if not weights:
        raise ValueError(
            "no active loss target has observations in the driver "
            f"(active terms: {sorted(config.active)})"
        )
    met, climate = forward.forcing_arrays(driver, np.float32)
    needed = {targets.observed(n) for n in weights}
    cell_major = lambda x: jnp.asarray(np.moveaxis(np.asarray(x), 0, -1), jnp.float32)
    stacked = np.stack([np.asarray(theta[n], np.float32) for n in parameters.NAMES], axis=-1)
    jac = jacobians(
        observation_rows(weights, config.steps_per_year),
        stacked,
        log_ranges(),
        dalec.Met(*(cell_major(x) for x in met)),
        dalec.Climate(*(jnp.asarray(x) for x in climate)),
        {k: cell_major(masks[k]) for k in needed},
    )
    finite = np.isfinite(jac).all(axis=(1, 2))
    if not finite.any():
        raise ValueError("the Jacobian of the observations is non-finite in every cell")
    if not finite.all():
        logger.warning(
            "non-finite Jacobian in %d of %d cells; they are left out",
            int((~finite).sum()),
            finite.size,
        )
    return information(jac[finite])


def pooled_sensitivity(
    driver: xr.Dataset, theta: Mapping[str, np.ndarray], config: LossConfig
) -> Sensitivity:
    """Sensitivities from the information of the driver's cells pooled (their mean)."""
    return sensitivity(cell_information(driver, theta, config).mean(axis=0))
