"""Which trained members a setup keeps, and loading them.

The select_members rule ranks a setup's members by final training loss and
writes ``selected.json`` (``{"kept": [member numbers], "final_train_loss": {...}}``);
the evaluation and the analyses read it here. JAX is imported only when members
are loaded, so reading the selection stays light.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybridland.io import atomic_path

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr

    from hybridland.training import train

logger = logging.getLogger(__name__)

MemberFiles = Sequence[tuple[Path | str, Path | str]]  # (weights.npz, member.json) per member


def select_members(infos: Sequence[Mapping[str, Any]], keep: int) -> list[int]:
    """Numbers of the ``keep`` members with the lowest final training loss (ties by number)."""
    if keep > len(infos):
        raise ValueError(f"cannot keep {keep} of {len(infos)} members")
    ranked = sorted(infos, key=lambda i: (i["final_train_loss"], i["member"]))
    return sorted(int(i["member"]) for i in ranked[:keep])


def select_members_file(infos: Sequence[Path | str], keep: int, destination: Path | str) -> None:
    """Entry point of the select_members rule: write the kept members and every loss as JSON."""
    members = [json.loads(Path(p).read_text()) for p in infos]
    kept = select_members(members, keep)
    losses = {str(m["member"]): m["final_train_loss"] for m in members}
    logger.info("kept members %s of %d by final training loss", kept, len(members))
    with atomic_path(destination) as tmp:
        tmp.write_text(json.dumps({"kept": kept, "final_train_loss": losses}, indent=1))


def kept_files(selected: Path | str, members: MemberFiles) -> list[tuple[Path | str, Path | str]]:
    """The (weights, info) pairs of the members listed as kept in ``selected``, in the order given.

    Every kept member must be among ``members``.
    """
    kept = {int(m) for m in json.loads(Path(selected).read_text())["kept"]}
    numbers = [int(json.loads(Path(info).read_text())["member"]) for _, info in members]
    absent = sorted(kept - set(numbers))
    if absent:
        raise ValueError(f"{selected}: kept members {absent} have no info file among the inputs")
    return [pair for pair, n in zip(members, numbers) if n in kept]


def load_kept(selected: Path | str, members: MemberFiles) -> list[train.Member]:
    """The members listed as kept in ``selected``, loaded (see :func:`kept_files`)."""
    return [load_member(Path(w), Path(i)) for w, i in kept_files(selected, members)]


def load_member(weights: Path, info: Path) -> train.Member:
    """A trained member back from :func:`hybridland.training.train.save_member`."""
    import jax

    from hybridland.model import network
    from hybridland.training import checkpoints, train

    meta = json.loads(Path(info).read_text())
    arrays = checkpoints.load_npz(weights)
    options = meta["options"]
    template = network.init_network(
        jax.random.key(0), len(meta["columns"]), width=options["width"], depth=options["depth"]
    )
    standardizer = network.Standardizer(arrays["standardizer_mean"], arrays["standardizer_std"])
    return train.Member(checkpoints.unflatten(template, arrays, "net"), standardizer, meta)


def member_parameters(driver: xr.Dataset, member: train.Member) -> dict[str, np.ndarray]:
    """The member's 40 physical parameters on every driver cell, (cell,)."""
    import jax.numpy as jnp
    import numpy as np

    from hybridland.model import network
    from hybridland.training import train

    raw = train.raw_features(driver, member.info["setup"], member.info["seed"])
    z = jnp.asarray(member.standardizer.apply(raw), jnp.float32)
    params = network.physical_parameters(member.net, z[:, :-1], z[:, -1])
    return {k: np.asarray(v) for k, v in params.items()}
