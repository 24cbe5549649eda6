"""The study's training jobs: members of one or several setups on one driver, in one program.

A job trains a list of members, each a (setup, number) pair: every setup of a grid,
the members of one setup or one member (``training.program``: grid, setup, member).
A member's dev patches, network key and patch order follow from the study seed, its
setup and its number, and all members on one driver train on as many patches, so a
member's result is the same, to float32 rounding, whichever job trains it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from hybridland.data.driver import open_driver
from hybridland.training import checkpoints, setups, train

MemberId = tuple[str, int]  # (setup, member number)


def member_run(
    driver: xr.Dataset, setup: str, member: int, seed: int, dev_fraction: float
) -> train.TrainingRun:
    """A setup's member: its dev patches are a share of the non-test patches, the rest trains."""
    candidates = driver.patch_id.values[~driver.patch_test.values]
    dev = train.dev_patches(candidates, dev_fraction, train.member_seed(seed, setup, member))
    return train.TrainingRun(setup, setup, member, np.setdiff1d(candidates, dev), dev)


def train_members(
    driver: xr.Dataset,
    members: Sequence[MemberId],
    seed: int,
    options: train.TrainOptions,
    checkpoint: Path,
) -> list[train.Member]:
    """Train ``members`` in one JAX program, resuming from ``checkpoint``.

    Every member keeps its own seed, split, standardisation, key and patch order. The
    dev share is a count of the same candidate patches for every member, so all train
    on as many patches and take the steps they take alone (see ``train.train_runs``).
    """
    runs = [member_run(driver, s, m, seed, options.dev_fraction) for s, m in members]
    assert len({r.train.size for r in runs}) == 1, "members of one driver train on as many patches"
    fingerprint = checkpoint_fingerprint(driver, members, seed, options)
    trained = train.train_runs(driver, runs, seed, options, checkpoint=(checkpoint, fingerprint))
    return [
        train.Member(t.net, t.standardizer, member_info(r, seed, t, options))
        for r, t in zip(runs, trained)
    ]


def member_info(
    run: train.TrainingRun, seed: int, trained: train.Trained, options: train.TrainOptions
) -> dict[str, Any]:
    """The record ``member.json`` holds."""
    history = trained.history
    kept = history[trained.kept_epoch - 1]
    return {
        "setup": run.setup,
        "member": run.member,
        "seed": seed,
        "member_seed": train.member_seed(seed, run.label, run.member),
        "attempts": trained.attempts,
        "columns": list(setups.columns(run.setup)),
        "train_patches": run.train.tolist(),
        "dev_patches": run.dev.tolist(),
        "history": {"train": [h[0] for h in history], "dev": [h[1] for h in history]},
        "final_train_loss": kept[0],  # of the kept epoch (the last one without patience)
        "final_dev_loss": kept[1],
        "epochs_run": len(history),
        "stop_reason": trained.stop_reason,  # epochs, patience or diverged
        "kept_epoch": trained.kept_epoch,  # 1-based; the best-dev epoch with patience
        "options": asdict(options),
    }


def checkpoint_fingerprint(
    driver: xr.Dataset, members: Sequence[MemberId], seed: int, options: train.TrainOptions
) -> dict[str, str]:
    """Everything a job's trajectories depend on, by part; a checkpoint resumes only a job
    whose every part is the same (the members: every (setup, number), in order)."""
    return {
        "options": options.fingerprint(),  # training and loss settings
        "driver": checkpoints.driver_digest(driver),
        "members": json.dumps([[setup, member] for setup, member in members]),
        "seed": str(seed),
        "feature_pad": str(train.FEATURE_PAD),
    }


def train_files(
    driver_path: Path,
    members: Sequence[Sequence[Any]],
    seed: int,
    options: train.TrainOptions,
    weights: Sequence[Path],
    infos: Sequence[Path],
) -> None:
    """Entry point of the training rules: ``members`` ([setup, number] each) in one program,
    resuming from the job's checkpoint; one (weights, info) pair each, in the order given."""
    ids = [(str(setup), int(member)) for setup, member in members]
    if not len(ids) == len(weights) == len(infos):
        raise ValueError(
            f"{len(ids)} members but {len(weights)} weights and {len(infos)} info files"
        )
    checkpoint = checkpoints.job_checkpoint([Path(w) for w in weights], ids)
    results = train_members(open_driver(driver_path), ids, seed, options, checkpoint)
    for result, weight, info in zip(results, weights, infos):
        train.save_member(result, Path(weight), Path(info))
    checkpoint.unlink(missing_ok=True)
