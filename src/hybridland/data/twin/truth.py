"""The twin's truth on the truth grid: predictors, TRUE parameters and the DALEC993 run."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from hybridland.contract import FORCING
from hybridland.data.twin.config import TwinConfig
from hybridland.data.twin.design import true_parameters
from hybridland.data.twin.grids import (
    PRODUCT_GRIDS,
    box_grid,
    covered_area_mean,
    to_truth_grid,
)
from hybridland.data.twin.landscape import Landscape, class_fractions, pft_fractions
from hybridland.data.twin.weather import Calendar, Forcing, co2_ppm
from hybridland.model import dalec, forward, parameters

Array = np.ndarray


def truth_predictors(
    land: Landscape, forcing: Forcing, config: TwinConfig
) -> tuple[dict[str, Array], Array]:
    """Predictor columns on the truth grid (NaN off land) and the land mask."""
    truth = land.truth
    frac = class_fractions(land.igbp, land.fine, truth)
    pfts, mask = pft_fractions(frac)
    t_mean = 0.5 * (forcing.t_min + forcing.t_max).mean(0)
    p_mean = forcing.precip.mean(0)
    soil_grid = box_grid(config.box, PRODUCT_GRIDS["soil"])
    cols = {
        **pfts,
        "MAT": to_truth_grid(t_mean, land.forcing_grid, truth),
        "MAP": to_truth_grid(p_mean, land.forcing_grid, truth) * 365.25,
        "elevation": covered_area_mean(land.elevation.astype(np.float64), land.fine, truth),
        "canopy_height": covered_area_mean(
            land.canopy_height.astype(np.float64), land.fine, truth, 0.0
        ),
        "forest_age": covered_area_mean(land.forest_age.astype(np.float64), land.fine, truth, 0.0),
        **{k: covered_area_mean(v, soil_grid, truth, 0.0) for k, v in land.soil.items()},
    }
    return {k: np.where(mask, v, np.nan) for k, v in cols.items()}, mask


TRUTH_RUN_OUTPUTS: tuple[str, ...] = (
    "lai",
    "gpp",
    "ET",
    "nee",
    "nbe",
    "SIF",
    "next_labile_pool",
    "next_foliar_pool",
    "next_root_pool",
    "next_wood_pool",
    "next_som_pool",
    "next_water_pool",
)


def run_truth(
    params: dict[str, Array],
    forcing: dict[str, Array],
    climate: dict[str, Array],
    cal: Calendar,
    co2: Array,
) -> dict[str, Array]:
    """DALEC993 in float32 on land cells, through :mod:`hybridland.model.forward`'s jitted run.

    Args:
        params: 40 parameters, each (cells,).
        forcing: t_min, t_max, rad, vpd, precip, burned_area, each (time, cells).
        climate: lat, t_mean, p_mean, each (cells,).
        cal: the monthly calendar; co2 (time,) ppm.

    Returns:
        TRUTH_RUN_OUTPUTS, each (time, cells) float32.
    """
    problem = parameters.out_of_bounds(params)
    if problem:
        raise RuntimeError(f"twin truth: {problem}")
    f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
    by_time = {"days": cal.days, "co2": co2, "doy": cal.doy, "delta_t": cal.ndays}
    # Series over time are (time, 1) columns that broadcast over the cells.
    met = dalec.Met(
        **{k: f32(v[:, None]) for k, v in by_time.items()}, **{k: f32(forcing[k]) for k in FORCING}
    )
    clim = dalec.Climate(*(f32(climate[k]) for k in dalec.Climate._fields))
    out = forward.simulate({k: f32(v) for k, v in params.items()}, met, clim, TRUTH_RUN_OUTPUTS)
    return {k: np.asarray(v) for k, v in out.items()}


class Truth(NamedTuple):
    """The noise-free truth on the truth grid (NaN off land)."""

    predictors: dict[str, Array]  # (ty, tx)
    parameters: dict[str, Array]  # (ty, tx)
    outputs: dict[str, Array]  # (time, ty, tx), TRUTH_RUN_OUTPUTS plus 'biomass', 'reco'
    land: Array  # (ty, tx) bool
    t_mean: Array  # (time, ty, tx) monthly mean temperature, degC


def simulate_truth(land: Landscape, forcing: Forcing, cal: Calendar, config: TwinConfig) -> Truth:
    """TRUE parameters from the predictors and DALEC993 (float32) on the land cells."""
    predictors, mask = truth_predictors(land, forcing, config)
    params_grid = true_parameters(predictors, config.truth_overrides)
    cell = lambda x: x[..., mask]
    at_truth = {
        k: to_truth_grid(v, land.forcing_grid, land.truth) for k, v in forcing._asdict().items()
    }
    lat = np.broadcast_to(land.truth.lat.centres[:, None], land.truth.shape)
    climate = {
        "lat": cell(lat),
        "t_mean": cell(predictors["MAT"]),
        "p_mean": cell(predictors["MAP"]) / 365.25,
    }
    flat = run_truth(
        {k: cell(v) for k, v in params_grid.items()},
        {k: cell(v) for k, v in at_truth.items()},
        climate,
        cal,
        co2_ppm(cal),
    )
    flat["biomass"] = sum(flat[f"next_{p}_pool"] for p in ("labile", "foliar", "root", "wood"))
    flat["reco"] = flat["gpp"] + flat["nee"]
    outputs = {k: _scatter(v, mask) for k, v in flat.items()}
    t_mean = 0.5 * (at_truth["t_min"] + at_truth["t_max"])
    return Truth(
        predictors,
        {k: np.where(mask, v, np.nan) for k, v in params_grid.items()},
        outputs,
        mask,
        t_mean,
    )


def _scatter(values: Array, mask: Array) -> Array:
    out = np.full((*values.shape[:-1], *mask.shape), np.nan, np.float32)
    out[..., mask] = values
    return out


def check_truth(truth: Truth) -> None:
    """Raise RuntimeError if a model output is not finite on a land cell."""
    for name, values in truth.outputs.items():
        bad = int((~np.isfinite(values[:, truth.land])).sum())
        if bad:
            raise RuntimeError(
                f"twin truth: output '{name}' has {bad} non-finite values on land cells"
            )
