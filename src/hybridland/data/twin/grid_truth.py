"""A twin whose truth the analysis grid can represent: observations made on the driver's cells.

The twin runs its truth on the 0.05-degree grid and averages the outputs onto each
analysis grid, so there no parameter map reproduces them (a mean of land covers'
parameters does not give the mean of their outputs; docs/analyses.md). With
``driver.observations: grid_truth`` the driver's observations are replaced by DALEC993
run on the driver's own cells with the truth's cell means, plus the twin's noise
(:data:`~hybridland.data.twin.config.DEFAULT_NOISE`, or ``twin.noise``) and every gap
of the products kept. The true maps then fit the observations to the noise, so a
check that fails there fails for the analysis, not for the grid.

The noise is drawn per cell (per patch for NBE and EWT), not on the products' finer
grids before averaging, so it is larger than the default twin's on the analysis grid.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
import xarray as xr

from hybridland.contract import COARSE_TARGETS
from hybridland.data.driver import parameters_at_cells, patch_means
from hybridland.data.twin.config import TwinConfig
from hybridland.data.twin.observe import SIGNED, add_noise
from hybridland.model import dalec, forward, targets

# Driver target -> its key in the twin's noise table (the EC targets are named the other way).
NOISE_KEYS = {"gpp_ec": "ec_gpp", "reco_ec": "ec_reco", "et_ec": "ec_et"}


def observed_targets(driver: xr.Dataset) -> list[str]:
    """The driver's observation variables that the model can make (loss targets)."""
    return [n for n in targets.TERMS if n in driver and targets.observed(n) == n]


def clean_observations(driver: xr.Dataset, params: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Noise-free observations on the driver's cells and patches, each shaped as the driver's
    variable: DALEC993 on the cells with ``params`` (name -> (cell,)), each target's model
    quantity (gap-free) and, for NBE and EWT, its mean over each patch's cells."""
    names = observed_targets(driver)
    outputs = tuple(sorted({o for n in names for o in targets.TERMS[n].outputs}))
    met, climate = forward.forcing_arrays(driver, np.float32)
    run = forward.simulate(
        {k: jnp.asarray(v, jnp.float32) for k, v in params.items()},
        dalec.Met(*(jnp.asarray(x) for x in met)),
        dalec.Climate(*(jnp.asarray(x) for x in climate)),
        outputs,
    )
    everywhere = jnp.ones_like(run[outputs[0]])
    out = {}
    for name in names:
        model = np.asarray(targets.model_quantity(name, run, everywhere), np.float64).T
        if name in COARSE_TARGETS:
            model = patch_means(model, driver.patch.values, driver.patch_id.values)
        out[name] = model if driver[name].ndim == 2 else model.mean(axis=1)
    return out


def observed_on_grid(
    driver: xr.Dataset,
    data: Mapping[str, xr.Dataset],
    *,
    noise: Mapping[str, Any],
    seed: int,
) -> xr.Dataset:
    """``driver`` with its observations replaced as the module docstring says.

    ``data``: the regridded products by name (``truth_parameters`` among them); ``noise``:
    the study's ``twin.noise`` (merged over the defaults); ``seed``: the study seed (each
    grid draws its own stream).
    """
    if "truth_parameters" not in data:
        raise ValueError(
            "driver.observations: grid_truth needs the twin's truth_parameters product "
            "(a twin study's datasets)"
        )
    levels = TwinConfig.from_mapping({"noise": dict(noise)}).noise
    truth = parameters_at_cells(data["truth_parameters"], driver, "truth_parameters")
    clean = clean_observations(driver, truth)
    rng = np.random.default_rng([seed, zlib.crc32(str(driver.attrs.get("grid", "")).encode())])
    out = driver.copy()
    for name, values in clean.items():
        noisy = add_noise(rng, values, levels[NOISE_KEYS.get(name, name)], name not in SIGNED)
        gaps = ~np.isfinite(driver[name].values)
        out[name] = driver[name].copy(data=np.where(gaps, np.nan, noisy).astype(driver[name].dtype))
    out.attrs["observations"] = (
        "grid_truth: DALEC993 on these cells with the truth's cell means, plus noise "
        "(hybridland.data.twin.grid_truth)"
    )
    return out
