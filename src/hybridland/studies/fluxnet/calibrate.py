"""The upper bound: one raw parameter vector calibrated per site on its own training years."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from hybridland.io import write_netcdf
from hybridland.model import loss, parameters
from hybridland.studies.fluxnet.crossval import simulate_targets
from hybridland.studies.fluxnet.sites import CALIBRATION, CALIBRATION_SETUP, FluxnetError
from hybridland.training import batches

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrationOptions:
    steps: int
    learning_rate: float

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any]) -> CalibrationOptions:
        return cls(int(mapping["steps"]), float(mapping["learning_rate"]))


def raw_to_physical(raw: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Physical parameters from raw per-group vectors (..., n_group) through the bounded
    transform."""
    return parameters.merge_groups(
        {g: parameters.to_physical(raw[g], g) for g in parameters.GROUPS}
    )


def make_calibration(config: loss.LossConfig, optimiser: optax.GradientTransformation, steps: int):
    """Jitted ``steps`` full-batch Adam steps on every site at once; sites are independent
    (vmapped)."""

    def site_loss(raw, met, climate, observations):
        params = {k: v[None] for k, v in raw_to_physical(raw).items()}  # one slot
        return loss.total_loss(params, met, climate, observations, config)

    batched = jax.vmap(
        site_loss, in_axes=(0, 1, 0, 1)
    )  # met/obs (time, site, slot), climate (site, slot)

    def run(raw, opt_state, met, climate, observations):
        def step(carry, _):
            raw, opt_state = carry
            value, grads = jax.value_and_grad(
                lambda r: jnp.sum(batched(r, met, climate, observations))
            )(raw)
            updates, opt_state = optimiser.update(grads, opt_state, raw)
            return (optax.apply_updates(raw, updates), opt_state), value

        (raw, opt_state), values = jax.lax.scan(step, (raw, opt_state), None, length=steps)
        return raw, opt_state, values, batched(raw, met, climate, observations)

    return jax.jit(run)


def calibrate_sites(
    drv: xr.Dataset, config: loss.LossConfig, options: CalibrationOptions, chunk: int = 100
) -> tuple[dict[str, np.ndarray], np.ndarray, list[float]]:
    """One parameter vector per site on its training months (raw start 0, the geometric mid-range).

    Returns physical parameters (cell,), the final loss per site and the summed loss every ``chunk``
    steps.
    """
    shared = batches.pack(drv, drv.patch_id.values)
    loss.check_observations(shared.observations, config)
    n = drv.sizes["cell"]
    raw = {
        g: jnp.zeros((n, len(parameters.group_names(g))), jnp.float32) for g in parameters.GROUPS
    }
    optimiser = optax.adam(options.learning_rate)
    opt_state = optimiser.init(raw)
    history = []
    done = 0
    while done < options.steps:
        steps = min(chunk, options.steps - done)
        raw, opt_state, values, per_site = make_calibration(config, optimiser, steps)(
            raw, opt_state, shared.met, shared.climate, shared.observations
        )
        done += steps
        history.append(float(values[-1]))
        logger.info(
            "per-site calibration step %d/%d: summed loss %.5g", done, options.steps, history[-1]
        )
    params = {k: np.asarray(v) for k, v in raw_to_physical(raw).items()}
    return params, np.asarray(per_site, np.float64), history


def calibration_dataset(
    drv: xr.Dataset,
    setup: str,
    sim: Mapping[str, np.ndarray],
    params: Mapping[str, np.ndarray],
    final: np.ndarray,
    attrs: Mapping[str, Any],
    history: Sequence[float] = (),
) -> xr.Dataset:
    """Per-site calibration results: target series (scheme, cell, time) under the scheme
    ``per_site_calibration``, parameters (scheme, cell) and the final loss per site."""
    return xr.Dataset(
        {
            **{
                t: (("scheme", "cell", "time"), v[None], {"units": drv[t].attrs.get("units", "")})
                for t, v in sim.items()
            },
            **{
                k: (("scheme", "cell"), v[None], {"units": parameters.BY_NAME[k].units})
                for k, v in params.items()
            },
            "final_loss": ("cell", final),
            "loss_history": ("chunk", np.asarray(history, np.float64)),
        },
        coords={
            "scheme": [CALIBRATION],
            "cell": drv.cell.values,
            "site": ("cell", drv.site.values),
            "time": drv.time.values,
        },
        attrs={"setup": setup, **attrs},
    )


def calibrate_files(
    driver_path: Path | str,
    config: loss.LossConfig,
    options: CalibrationOptions,
    destination: Path | str,
) -> None:
    """Entry point of the fluxnet_calibrate rule: calibrate every site, simulate its record."""
    with xr.open_dataset(driver_path) as data:
        drv = data.load()
    params, final, history = calibrate_sites(drv, config, options)
    bad = [str(s) for s, v in zip(drv.site.values, final) if not np.isfinite(v)]
    if bad:
        raise FluxnetError(f"per-site calibration: loss not finite at sites {bad}")
    sim = simulate_targets(drv, params)
    attrs = {"steps": options.steps, "learning_rate": options.learning_rate}
    result = calibration_dataset(drv, CALIBRATION_SETUP, sim, params, final, attrs, history)
    write_netcdf(result, destination)


# ---- evaluation
