"""Skill scores of simulated against observed values: R2 score (NSE), explained variance
(squared Pearson r), Pearson r and RMSE, on the finite pairs only."""

from __future__ import annotations

import numpy as np

MIN_PAIRS = 3  # fewer finite pairs give NaN


def finite_pairs(obs: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    obs, sim = np.broadcast_arrays(np.asarray(obs, np.float64), np.asarray(sim, np.float64))
    keep = np.isfinite(obs) & np.isfinite(sim)
    return obs[keep], sim[keep]


def _no_spread(centred: np.ndarray, values: np.ndarray, axis: int = 0) -> np.ndarray:
    """True where a sum of squared deviations is zero up to rounding of the mean."""
    scale = np.nanmax(np.abs(values), axis=axis, initial=0.0)
    n = np.sum(np.isfinite(values), axis=axis)
    return np.sum(centred**2, axis=axis) <= n * (8.0 * np.finfo(np.float64).eps * scale) ** 2


def columnwise_scores(
    obs: np.ndarray, sim: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NSE, squared Pearson r and pair count of each column of (n, k) arrays.

    Only pairs where both values are finite count. A column with fewer than 3
    pairs, or with no spread in the observations (NSE) or in either series
    (r2), scores NaN.
    """
    obs, sim = np.broadcast_arrays(np.asarray(obs, np.float64), np.asarray(sim, np.float64))
    valid = np.isfinite(obs) & np.isfinite(sim)
    n = valid.sum(axis=0)
    o, s = np.where(valid, obs, np.nan), np.where(valid, sim, np.nan)
    count = np.maximum(n, 1)
    o_dev = np.where(valid, o - np.nansum(o, axis=0) / count, 0.0)
    s_dev = np.where(valid, s - np.nansum(s, axis=0) / count, 0.0)
    ss_obs, ss_sim = np.sum(o_dev**2, axis=0), np.sum(s_dev**2, axis=0)
    flat_obs, flat_sim = _no_spread(o_dev, o), _no_spread(s_dev, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        nse = 1.0 - np.nansum((s - o) ** 2, axis=0) / ss_obs
        r2 = np.sum(o_dev * s_dev, axis=0) ** 2 / (ss_obs * ss_sim)
    few = n < MIN_PAIRS
    nse = np.where(few | flat_obs, np.nan, nse)
    r2 = np.where(few | flat_obs | flat_sim, np.nan, np.minimum(r2, 1.0))
    return nse, r2, n


def r2_score(obs: np.ndarray, sim: np.ndarray) -> float:
    """Nash-Sutcliffe efficiency 1 - sum((sim - obs)^2) / sum((obs - mean(obs))^2) over finite
    pairs."""
    o, s = finite_pairs(obs, sim)
    return float(columnwise_scores(o[:, None], s[:, None])[0][0])


def explained_variance(obs: np.ndarray, sim: np.ndarray) -> float:
    """Squared Pearson correlation of ``obs`` and ``sim`` over finite pairs."""
    o, s = finite_pairs(obs, sim)
    return float(columnwise_scores(o[:, None], s[:, None])[1][0])


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation over finite pairs; NaN with fewer than 3 pairs or no spread."""
    x, y = finite_pairs(a, b)
    if x.size < MIN_PAIRS:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    if _no_spread(dx, x) or _no_spread(dy, y):
        return float("nan")
    return float(np.clip(np.sum(dx * dy) / np.sqrt(np.sum(dx**2) * np.sum(dy**2)), -1.0, 1.0))


def rmse(obs: np.ndarray, sim: np.ndarray) -> float:
    """Root-mean-square difference over finite pairs; NaN with fewer than 3 pairs."""
    o, s = finite_pairs(obs, sim)
    return float(np.sqrt(np.mean((s - o) ** 2))) if o.size >= MIN_PAIRS else float("nan")
