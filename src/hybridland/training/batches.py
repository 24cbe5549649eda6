"""Patches as the training program reads them: observations per target, cells padded to
common slots, and the batch one Adam step takes."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from hybridland.contract import COARSE_TARGETS, SITE_TARGETS, TARGETS
from hybridland.model import dalec, forward, loss


class Patches(NamedTuple):
    """Patches padded to a common number of slots; arrays (patch, slot, ...) or (time, patch, slot).

    Forcing and observations are shared by the members of a setup; the
    standardised features are each member's own (None in the shared pack).
    """

    features: jax.Array | None
    lat_feature: jax.Array | None
    met: dalec.Met
    climate: dalec.Climate
    observations: dict[str, loss.Observation]


def observations(driver: xr.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(value, mask) per target on driver cells, (time, cell); missing values are 0 with mask 0.

    Optional driver variables refine the mask of (cell, time) targets: ``test_month``
    (cell, time) removes held-out months from training, and ``<target>_weight``
    (cell, time) multiplies a target's mask (e.g. inverse-variance weights).
    """
    out = {}
    held_out = driver["test_month"].values.T if "test_month" in driver else None
    cell_patch = driver.patch.values
    patch_index = {int(p): i for i, p in enumerate(driver.patch_id.values)}
    rows = np.array([patch_index[int(p)] for p in cell_patch])
    for name in TARGETS | SITE_TARGETS:
        if name not in driver:
            continue
        values = driver[name].values.astype(np.float64)
        if name in COARSE_TARGETS:
            values = values[rows]  # the patch value on each of its cells
        values = values.T if values.ndim == 2 else values[None, :]
        mask = np.isfinite(values).astype(np.float32)
        if name in SITE_TARGETS:
            mask = mask * driver.ec_weight.values[None, :]
        if f"{name}_weight" in driver:
            mask = mask * np.nan_to_num(driver[f"{name}_weight"].values.T.astype(np.float32))
        if held_out is not None and mask.shape == held_out.shape:
            mask = mask * ~held_out
        out[name] = (np.where(mask > 0, values, 0.0).astype(np.float32), mask)
    return out


def _slots(driver: xr.Dataset, patch_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell index (patch, slot) of each patch's cells, padded by repeating them, and the valid
    mask."""
    members = [np.flatnonzero(driver.patch.values == p) for p in patch_ids]
    slots = max(len(m) for m in members)
    return np.array([np.resize(m, slots) for m in members]), np.array(
        [np.arange(slots) < len(m) for m in members]
    )


def pack(driver: xr.Dataset, patch_ids: np.ndarray) -> Patches:
    """Forcing and observations of ``patch_ids`` as (time, patch, slot); features are left empty.

    Padded slots copy cells of the patch and carry observation weight 0.
    """
    index, valid = _slots(driver, patch_ids)

    def cells(x: np.ndarray) -> jax.Array:  # (cell,) -> (patch, slot)
        return jnp.asarray(x[index], jnp.float32)

    def time_cells(x: np.ndarray) -> jax.Array:  # (time, cell) -> (time, patch, slot)
        return jnp.asarray(x[:, index], jnp.float32)

    met, climate = forward.forcing_arrays(driver, np.float32)
    met = dalec.Met(*(time_cells(x) for x in met))
    climate = dalec.Climate(*(cells(x) for x in climate))
    obs = {
        name: loss.Observation(
            time_cells(value), time_cells(mask) * jnp.asarray(valid, jnp.float32)
        )
        for name, (value, mask) in observations(driver).items()
    }
    return Patches(None, None, met, climate, obs)


def pack_features(driver: xr.Dataset, features: np.ndarray, patch_ids: np.ndarray) -> jax.Array:
    """Per-cell features (cell, n) as (patch, slot, n) in the layout of :func:`pack`, zero in padded
    slots."""
    index, valid = _slots(driver, patch_ids)
    return jnp.asarray(features[index] * valid[..., None], jnp.float32)


def take(patches: Patches, idx: jax.Array) -> loss.Batch:
    """The patches ``idx`` as one batch (patch axis first for cells, second for time)."""
    by_cell = lambda x: x[idx]
    by_time = lambda x: x[:, idx]
    return loss.Batch(
        features=by_cell(patches.features),
        lat_feature=by_cell(patches.lat_feature),
        met=jax.tree_util.tree_map(by_time, patches.met),
        climate=jax.tree_util.tree_map(by_cell, patches.climate),
        observations=jax.tree_util.tree_map(by_time, patches.observations),
    )
