"""Observations of the twin's truth: noisy, gappy products on their native grids and sites.

Noise is a mean-preserving relative error plus an additive one; gaps are NaN
(random, snow cover, GRACE months, site-months); see docs/twin.md, "Observations".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from hybridland.contract import PFT
from hybridland.data.twin.config import Noise, TwinConfig
from hybridland.data.twin.fields import stream
from hybridland.data.twin.grids import PRODUCT_GRIDS, LatLonGrid, box_grid, covered_area_mean
from hybridland.data.twin.landscape import Landscape
from hybridland.data.twin.truth import Truth
from hybridland.data.twin.weather import Calendar

Array = np.ndarray


SIGNED = ("sif", "nbe", "ewt")  # products that may be negative (the rest are clipped at 0)


def add_noise(rng: np.random.Generator, x: Array, noise: Noise, nonnegative: bool = False) -> Array:
    """x exp(r e1 - r^2/2) + a e2 with e ~ N(0, 1): a mean-preserving lognormal
    relative error (relative sd ~ r) plus additive noise; NaN stays NaN."""
    e1 = rng.standard_normal(x.shape)
    e2 = rng.standard_normal(x.shape)
    r = noise.relative
    y = x * np.exp(r * e1 - 0.5 * r * r) + noise.absolute * e2
    return np.maximum(y, 0.0) if nonnegative else y


def random_gaps(rng: np.random.Generator, shape: tuple[int, ...], fraction: float) -> Array:
    """Boolean mask, True where an observation is dropped."""
    return rng.uniform(size=shape) < fraction


def annual_mean(x: Array, cal: Calendar) -> Array:
    """Mean of consecutive 12-month blocks (time, ...) -> (year, ...)."""
    return x.reshape(x.shape[0] // 12, 12, *x.shape[1:]).mean(1)


GRACE_GAP = (np.datetime64("2017-07-01"), np.datetime64("2018-06-01"))


def ewt_month_gaps(rng: np.random.Generator, cal: Calendar, fraction: float) -> Array:
    """(time,) True for missing GRACE months: random ones plus the mission gap."""
    mission = (cal.start >= GRACE_GAP[0]) & (cal.start < GRACE_GAP[1])
    return mission | random_gaps(rng, cal.start.shape, fraction)


class Observation(NamedTuple):
    grid: LatLonGrid
    values: Array  # (time, ny, nx) or (ny, nx), NaN = missing
    clean: Array  # noise-free, gap-free aggregate


def observe_gridded(
    truth: Truth, land: Landscape, cal: Calendar, config: TwinConfig
) -> dict[str, Observation]:
    """All gridded observation products."""
    seed, out = config.seed, {}
    fields = {
        "lai": truth.outputs["lai"],
        "sif": truth.outputs["SIF"],
        "et": truth.outputs["ET"],
        "nbe": truth.outputs["nbe"],
        "ewt": truth.outputs["next_water_pool"] - truth.outputs["next_water_pool"].mean(0),
        "biomass": annual_mean(truth.outputs["biomass"], cal),
        "som": truth.outputs["next_som_pool"].mean(0),
    }
    for name, field_ in fields.items():
        grid = box_grid(config.box, PRODUCT_GRIDS[name])
        clean = covered_area_mean(
            field_.astype(np.float64), land.truth, grid, 0.0 if name == "nbe" else 0.5
        )
        rng = stream(seed, f"obs_{name}")
        values = add_noise(rng, clean, config.noise[name], nonnegative=name not in SIGNED)
        values = np.where(
            _gaps(name, rng, values.shape, truth, land, grid, cal, config), np.nan, values
        )
        out[name] = Observation(grid, values.astype(np.float32), clean.astype(np.float32))
    return out


def _gaps(
    name: str,
    rng: np.random.Generator,
    shape: tuple[int, ...],
    truth: Truth,
    land: Landscape,
    grid: LatLonGrid,
    cal: Calendar,
    config: TwinConfig,
) -> Array:
    if name == "ewt":
        return np.broadcast_to(ewt_month_gaps(rng, cal, config.gaps["ewt"])[:, None, None], shape)
    gaps = random_gaps(rng, shape, config.gaps[name])
    if name in ("lai", "sif"):
        gaps = gaps | (
            covered_area_mean(truth.t_mean, land.truth, grid, 0.0) < config.snow_threshold
        )
    return gaps


class Sites(NamedTuple):
    """Eddy-covariance sites: indices into the truth grid and their records."""

    iy: Array
    ix: Array
    records: dict[str, Array]  # gpp, reco, et: (site, time)
    clean: dict[str, Array]


def choose_sites(
    rng: np.random.Generator, predictors: Mapping[str, Array], land: Array, n: int
) -> tuple[Array, Array]:
    """Site cells: cycle through PFTs by area, each a random cell dominated (>= 0.6) by it."""
    order = sorted(PFT, key=lambda p: -np.nansum(predictors[p]))
    chosen: list[int] = []
    flat_land = land.ravel()
    for i in range(n * len(PFT)):
        if len(chosen) == n:
            break
        share = np.nan_to_num(predictors[order[i % len(PFT)]].ravel())
        candidates = np.flatnonzero(
            flat_land & (share >= 0.6) & ~np.isin(np.arange(share.size), chosen)
        )
        if candidates.size:
            chosen.append(int(rng.choice(candidates)))
    if len(chosen) < n:
        rest = np.setdiff1d(np.flatnonzero(flat_land), chosen)
        chosen.extend(
            int(c) for c in rng.choice(rest, size=min(n - len(chosen), rest.size), replace=False)
        )
    iy, ix = np.unravel_index(np.asarray(chosen, int), land.shape)
    return iy, ix


def observe_sites(truth: Truth, config: TwinConfig) -> Sites:
    rng = stream(config.seed, "ec_sites")
    iy, ix = choose_sites(rng, truth.predictors, truth.land, config.n_sites)
    clean = {
        k: truth.outputs[src][:, iy, ix].T.astype(np.float64)
        for k, src in (("gpp", "gpp"), ("reco", "reco"), ("et", "ET"))
    }
    records = {}
    for name, values in clean.items():
        noisy = add_noise(rng, values, config.noise[f"ec_{name}"], nonnegative=True)
        records[name] = np.where(
            random_gaps(rng, noisy.shape, config.gaps["ec"]), np.nan, noisy
        ).astype(np.float32)
    return Sites(iy, ix, records, {k: v.astype(np.float32) for k, v in clean.items()})
