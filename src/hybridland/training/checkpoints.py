"""Checkpoints and weights as safe .npz files (tree leaves keyed by their paths, no pickle),
the digest of a driver and the checkpoint file of a job."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from hybridland.io import atomic_path

logger = logging.getLogger(__name__)


def flatten(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {prefix + jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def unflatten(template: Any, arrays: Mapping[str, np.ndarray], prefix: str) -> Any:
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    return jax.tree_util.tree_unflatten(
        treedef, [jnp.asarray(arrays[prefix + jax.tree_util.keystr(p)]) for p, _ in paths]
    )


def save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def driver_digest(driver: xr.Dataset) -> str:
    """Digest of every value of the driver: predictors, forcing, targets, masks and split.

    Names, types, shapes and values of all variables and coordinates; attributes are not
    read (they do not enter training).
    """
    digest = hashlib.sha256()
    for name in sorted(map(str, driver.variables)):
        values = np.ascontiguousarray(driver[name].values)
        digest.update(f"{name}:{values.dtype.str}:{values.shape};".encode())
        digest.update(values.astype(str) if values.dtype.kind == "O" else values)
    return digest.hexdigest()[:16]


def written_fingerprint(arrays: Mapping[str, np.ndarray]) -> dict[str, str]:
    """The fingerprint a checkpoint holds; empty for one written before it had parts."""
    try:
        written = json.loads(str(arrays.get("fingerprint", "")))
    except json.JSONDecodeError:
        return {}
    return written if isinstance(written, dict) else {}


def job_checkpoint(weights: Sequence[Path], members: Sequence[tuple[str, int]]) -> Path:
    """The checkpoint of the job that trains ``members`` ((setup, number) pairs) into
    ``weights`` (``<grid>/<setup>/memberNN/weights.npz``): one per job, so that no two jobs
    share one. A member alone: ``checkpoint.npz`` in its folder; members of one setup
    (train_setup, train_extra_members): ``checkpoint.membersNN-NN.npz`` in the setup's;
    members of several setups (a grid's job): ``checkpoint.grid.npz`` in the grid's."""
    member_dir = Path(weights[0]).parent
    if len(members) == 1:
        return member_dir / "checkpoint.npz"
    if len({setup for setup, _ in members}) == 1:
        numbers = "-".join(f"{m:02d}" for _, m in members)
        return member_dir.parent / f"checkpoint.members{numbers}.npz"
    return member_dir.parent.parent / "checkpoint.grid.npz"
