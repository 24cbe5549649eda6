"""Benchmark of the model core: forward, loss gradient and one Adam step.

Besides timings it reports where JAX ran (backend and device kind), the loss and
gradient norm at the initial network, and the loss after the timed Adam steps, so
that the figures can be checked against the training loop.

Inputs are synthetic but physically plausible: a monthly climate with a
latitude-dependent seasonal cycle, parameters at the network's initial output,
and observations from a forward run with noise and gaps, scored by the full
published loss (every term, EDC included). Cells are laid out as patches of
320 slots when the cell count allows, as in training.
"""

from __future__ import annotations

import json
import logging
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from hybridland.model import dalec, forward, loss, network

logger = logging.getLogger(__name__)
PATCH_SLOTS = 320
N_FEATURES = 20  # PFT+CLIM+SOIL+AGE


def synthetic_climate(
    rng: np.random.Generator, cells: int, months: int
) -> tuple[dalec.Met, dalec.Climate]:
    """Monthly forcing in realistic ranges, (months, cells), starting January 2001."""
    lat = rng.uniform(-40.0, 60.0, cells)
    month = np.arange(months) % 12
    doy = 15.0 + 30.4 * month
    days = 366.0 + 30.4375 * np.arange(months) + 15.0
    season = np.cos(2 * np.pi * (doy - 200.0) / 365.0)[:, None] * np.sign(lat)[None]
    t_mean = 28.0 - 0.45 * np.abs(lat) + rng.normal(0.0, 2.0, cells)
    amplitude = 2.0 + 0.3 * np.abs(lat)
    t_air = t_mean + amplitude * season + rng.normal(0.0, 1.0, (months, cells))
    t_range = rng.uniform(6.0, 14.0, (months, cells))
    rad = np.clip(18.0 + 10.0 * season - 0.05 * np.abs(lat), 1.0, 35.0)
    saturation = 6.11 * np.exp(17.27 * t_air / (t_air + 237.3))
    vpd = np.clip(saturation * rng.uniform(0.2, 0.6, (months, cells)), 0.1, None)
    p_mean = rng.uniform(0.5, 5.0, cells)
    precip = rng.gamma(2.0, p_mean / 2.0, (months, cells))
    burned = np.where(
        rng.random((months, cells)) < 0.02, rng.uniform(0.0, 0.2, (months, cells)), 0.0
    )
    co2 = 370.0 + 2.1 * np.arange(months) / 12.0
    step, cell = ("time",), ("time", "cell")
    forcing = xr.Dataset(
        {
            "days": (step, days),
            "t_min": (cell, t_air - t_range / 2),
            "t_max": (cell, t_air + t_range / 2),
            "rad": (cell, rad),
            "co2": (step, co2),
            "doy": (step, doy),
            "burned_area": (cell, burned),
            "vpd": (cell, vpd),
            "precip": (cell, precip),
            "delta_t": (step, np.full(months, 30.0)),
            "lat": ("cell", lat),
            "t_mean": ("cell", t_mean),
            "p_mean": ("cell", p_mean),
        }
    )
    met, climate = forward.forcing_arrays(forcing, np.float32)
    return jax.tree_util.tree_map(jnp.asarray, (met, climate))


def synthetic_batch(seed: int, cells: int, months: int) -> tuple[network.Network, loss.Batch]:
    """Network at initialisation and a batch with observations for every loss term."""
    rng = np.random.default_rng(seed)
    met, climate = synthetic_climate(rng, cells, months)
    features = jnp.asarray(rng.normal(size=(cells, N_FEATURES)), jnp.float32)
    hemisphere = np.asarray(network.lat_sigmoid(climate.lat))[:, None]
    lat_feature = jnp.asarray(
        network.Standardizer.fit(hemisphere).apply(hemisphere)[:, 0], jnp.float32
    )
    net = network.init_network(jax.random.key(seed), N_FEATURES)
    params = network.physical_parameters(net, features, lat_feature)
    out = dalec.simulate(params, met, climate).outputs
    truth = {
        "lai": out["lai"],
        "sif": out["SIF"],
        "et": out["ET"],
        "nbe": out["nbe"],
        "fire": out["total_fire_combust"],
        "ewt": out["next_water_pool"] - out["next_water_pool"].mean(0),
        "biomass": sum(out[f"next_{p}_pool"] for p in ("labile", "foliar", "root", "wood")),
        "som": out["next_som_pool"],
        "gpp_ec": out["gpp"],
        "reco_ec": out["gpp"] + out["nee"],
        "et_ec": out["ET"],
        "vod": out["vod"],
    }
    observations = {}
    for name, value in truth.items():
        value = np.asarray(value) * rng.normal(1.0, 0.1, value.shape)
        mask = (rng.random(value.shape) > 0.1).astype(np.float32)
        observations[name] = loss.Observation(
            jnp.asarray(value * mask, jnp.float32), jnp.asarray(mask)
        )
    batch = loss.Batch(features, lat_feature, met, climate, observations)
    return net, as_patches(batch, cells)


def as_patches(batch: loss.Batch, cells: int) -> loss.Batch:
    """Reshape the cell axis to (patches, 320) when it divides evenly into several patches."""
    if cells % PATCH_SLOTS or cells == PATCH_SLOTS:
        return batch
    shape = (cells // PATCH_SLOTS, PATCH_SLOTS)
    tree_map = jax.tree_util.tree_map

    def cells_first(x):
        return x.reshape(shape + x.shape[1:])

    def time_first(x):
        return x.reshape(x.shape[:1] + shape)

    return loss.Batch(
        features=cells_first(batch.features),
        lat_feature=cells_first(batch.lat_feature),
        met=tree_map(time_first, batch.met),
        climate=tree_map(cells_first, batch.climate),
        observations=tree_map(time_first, batch.observations),
    )


def published_config() -> loss.LossConfig:
    """Every term of the published loss with its published weight and aggregation."""
    return loss.LossConfig.from_mapping(
        loss.PUBLISHED_WEIGHTS, reduction="sum", coarse_min_valid=0.0
    )


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(first call seconds, median of ``repeats`` later calls)."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def run_benchmark(
    cells: int, months: int, *, repeats: int = 9, seed: int = 0, learning_rate: float = 5e-4
) -> dict[str, Any]:
    """Time forward, value_and_grad and a full Adam step; returns the JSON-able figures."""
    if repeats < 7:
        raise ValueError(f"repeats must be at least 7, got {repeats}")
    if cells < 1:
        raise ValueError(f"cells must be at least 1, got {cells}")
    if months < 12:
        raise ValueError(
            f"months must be at least 12 (the loss's annual terms and EDC need a whole year), "
            f"got {months}"
        )
    net, batch = synthetic_batch(seed, cells, months)
    config = published_config()
    optimiser = optax.adam(learning_rate)

    @jax.jit
    def forward(net, batch):
        params = network.physical_parameters(net, batch.features, batch.lat_feature)
        return dalec.simulate(params, batch.met, batch.climate, outputs=config.outputs()).outputs

    value_and_grad = jax.jit(jax.value_and_grad(loss.network_loss), static_argnums=2)

    @jax.jit
    def adam_step(net, opt_state, batch):
        value, grads = jax.value_and_grad(loss.network_loss)(net, batch, config)
        updates, opt_state = optimiser.update(grads, opt_state, net)
        return optax.apply_updates(net, updates), opt_state, value

    state = {"net": net, "opt": optimiser.init(net)}

    def one_adam_step():
        state["net"], state["opt"], value = adam_step(state["net"], state["opt"], batch)
        return value

    timings = {
        "forward": _median_time(lambda: forward(net, batch), repeats),
        "value_and_grad": _median_time(lambda: value_and_grad(net, batch, config), repeats),
        "adam_step": _median_time(one_adam_step, repeats),
    }
    initial_loss, initial_grads = value_and_grad(net, batch, config)
    value = float(one_adam_step())  # after the 1 + repeats steps timed above
    if not np.isfinite(value):
        raise RuntimeError(f"benchmark loss is not finite ({value}); inputs are not plausible")
    pixel_months = cells * months
    result: dict[str, Any] = {"cells": cells, "months": months, "repeats": repeats}
    result["compile_s"] = round(sum(first - median for first, median in timings.values()), 3)
    for name, (first, median) in timings.items():
        result[name] = {
            "median_s": median,
            "pixel_months_per_s": pixel_months / median,
            "first_call_s": first,
        }
    result["loss"] = value
    result["adam_steps_before_loss"] = repeats + 1
    result["initial_loss"] = float(initial_loss)
    result["initial_grad_norm"] = float(optax.global_norm(initial_grads))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result |= backend()
    result["jax_version"] = jax.__version__
    return result


def backend() -> dict[str, Any]:
    """Where JAX runs: backend (cpu, gpu, tpu), the kind of the default device, all devices."""
    return {
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "devices": [str(d) for d in jax.devices()],
    }


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2)
