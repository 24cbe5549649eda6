"""Cross-site generalisation: folds, the network trained without held-out sites, their
predictions."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import xarray as xr

from hybridland.io import atomic_path, write_netcdf
from hybridland.model import network, parameters, targets
from hybridland.studies.fluxnet.sites import MONTHLY_TARGETS, SCHEMES, FluxnetError
from hybridland.training import evaluate, train

logger = logging.getLogger(__name__)


def folds(drv: xr.Dataset, scheme: str) -> dict[str, np.ndarray]:
    """Fold name -> held-out cells (bool, cell): one fold per climate cluster or per site."""
    if scheme == "leave_cluster_out":
        labels = drv.cluster.values
    elif scheme == "leave_site_out":
        labels = drv.site.values
    else:
        raise FluxnetError(f"fluxnet.schemes: unknown scheme {scheme!r}; known: {list(SCHEMES)}")
    return {str(label): labels == label for label in dict.fromkeys(labels)}


def training_cells(held_out: np.ndarray) -> np.ndarray:
    """Cells a fold trains on; asserts that no held-out cell is among them."""
    train_cells = ~held_out
    assert not np.any(train_cells & held_out), "a held-out site is in the training cells"
    assert held_out.any() and train_cells.any(), (
        "a fold must hold out some sites and train on others"
    )
    return train_cells


# ---- cross-validated network training


class FoldRun(NamedTuple):
    """One (scheme, fold, member) of a setup."""

    scheme: str
    fold: str
    member: int
    held_out: np.ndarray  # (cell,) bool


def fold_runs(drv: xr.Dataset, schemes: Sequence[str], members: Sequence[int]) -> list[FoldRun]:
    return [FoldRun(s, f, m, h) for s in schemes for f, h in folds(drv, s).items() for m in members]


def training_runs(drv: xr.Dataset, setup: str, runs: Sequence[FoldRun]) -> list[train.TrainingRun]:
    """The runs as the training loop takes them: seeds labelled by fold, the fold's sites train, no
    dev."""
    patch_ids = drv.patch_id.values
    if not np.array_equal(drv.patch.values, patch_ids):
        raise FluxnetError("the FLUXNET driver must hold one site per patch, in cell order")
    return [
        train.TrainingRun(
            setup,
            f"{setup}:{r.scheme}:{r.fold}",
            r.member,
            patch_ids[training_cells(r.held_out)],
            patch_ids[:0],
        )
        for r in runs
    ]


def train_folds(
    drv: xr.Dataset, setup: str, runs: Sequence[FoldRun], seed: int, options: train.TrainOptions
) -> tuple[list[network.Network], list[network.Standardizer], np.ndarray]:
    """Train every run with :func:`hybridland.training.train.train_runs`, all in one program.

    Returns nets, standardisers and final training losses. Features are not padded
    (FLUXNET trains one program per setup), and a run whose loss turns non-finite
    stops training and gets an infinite final loss. Folds hold out different numbers
    of sites, so a fold with fewer training sites wraps around its patch order to take
    the steps of the largest (see ``train.train_runs``).
    """
    trained = train.train_runs(
        drv,
        training_runs(drv, setup, runs),
        seed,
        options,
        feature_pad=1,
        diverged="stop",
    )
    final = np.array([np.inf if t.diverged else t.history[-1][0] for t in trained])
    return [t.net for t in trained], [t.standardizer for t in trained], final


def kept_runs(runs: Sequence[FoldRun], final: np.ndarray, keep: int) -> list[int]:
    """Indices of the ``keep`` runs of each (scheme, fold) with the lowest final training loss."""
    kept = []
    for key in dict.fromkeys((r.scheme, r.fold) for r in runs):
        index = [i for i, r in enumerate(runs) if (r.scheme, r.fold) == key]
        ranked = sorted(index, key=lambda i: (final[i], runs[i].member))[:keep]
        if not np.isfinite(final[ranked]).any():
            raise FluxnetError(f"{key[0]} fold {key[1]}: every member diverged")
        kept += sorted(i for i in ranked if np.isfinite(final[i]))
    return kept


def run_records(runs: Sequence[FoldRun], final: np.ndarray, kept: Sequence[int]) -> list[dict]:
    """One JSON record per run: its scheme, fold, member, final training loss and whether
    it is kept."""
    return [
        {
            "scheme": r.scheme,
            "fold": r.fold,
            "member": r.member,
            "final_train_loss": float(final[i]),
            "kept": i in kept,
        }
        for i, r in enumerate(runs)
    ]


def target_series(sim: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Model counterparts of the targets from DALEC outputs, each (cell, time)."""
    return {t: np.asarray(targets.model_quantity(t, sim, None)).T for t in MONTHLY_TARGETS}


def simulate_targets(drv: xr.Dataset, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run DALEC993 on every site with per-site parameters; targets' model series (cell, time)."""
    sim = evaluate.simulate_cells(drv, params, outputs=("lai", "gpp", "ET", "nee", "nbe"))
    return target_series(sim)


def predict_heldout(
    drv: xr.Dataset,
    setup: str,
    runs: Sequence[FoldRun],
    nets: Sequence[network.Network],
    standardizers: Sequence[network.Standardizer],
    kept: Sequence[int],
    seed: int,
) -> xr.Dataset:
    """Ensemble-mean (over kept members) simulations and parameters of each site where it is held
    out, (scheme, cell, time)."""
    raw = train.raw_features(drv, setup, seed)
    series, params = {}, {}
    for i in kept:
        z = jnp.asarray(standardizers[i].apply(raw), jnp.float32)
        p = {
            k: np.asarray(v)
            for k, v in network.physical_parameters(nets[i], z[:, :-1], z[:, -1]).items()
        }
        series[i], params[i] = simulate_targets(drv, p), p
    return heldout_dataset(drv, setup, runs, kept, series, params)


def heldout_dataset(
    drv: xr.Dataset,
    setup: str,
    runs: Sequence[FoldRun],
    kept: Sequence[int],
    series: Mapping[int, Mapping[str, np.ndarray]] | Sequence[Mapping[str, np.ndarray]],
    params: Mapping[int, Mapping[str, np.ndarray]] | Sequence[Mapping[str, np.ndarray]],
) -> xr.Dataset:
    """Ensemble means over the kept runs of their target series (cell, time) and parameters
    (cell,), each site where its fold holds it out: (scheme, cell, time) and (scheme, cell)."""
    schemes = list(dict.fromkeys(r.scheme for r in runs))
    shape = (len(schemes), drv.sizes["cell"])
    mean_series = {t: np.zeros(shape + (drv.sizes["time"],)) for t in MONTHLY_TARGETS}
    mean_params = {p: np.zeros(shape) for p in parameters.NAMES}
    count = np.zeros(shape)
    for i in kept:
        run = runs[i]
        s, h = schemes.index(run.scheme), run.held_out
        for t in MONTHLY_TARGETS:
            mean_series[t][s, h] += series[i][t][h]
        for k in parameters.NAMES:
            mean_params[k][s, h] += params[i][k][h]
        count[s, h] += 1
    if np.any(count == 0):
        raise FluxnetError(f"{setup}: some sites have no held-out prediction")
    return xr.Dataset(
        {
            **{
                t: (
                    ("scheme", "cell", "time"),
                    v / count[..., None],
                    {"units": drv[t].attrs.get("units", "")},
                )
                for t, v in mean_series.items()
            },
            **{
                k: (("scheme", "cell"), v / count, {"units": parameters.BY_NAME[k].units})
                for k, v in mean_params.items()
            },
            "members": (
                ("scheme", "cell"),
                count.astype(np.int32),
                {"long_name": "kept members averaged"},
            ),
        },
        coords={
            "scheme": schemes,
            "cell": drv.cell.values,
            "site": ("cell", drv.site.values),
            "time": drv.time.values,
        },
        attrs={
            "setup": setup,
            "title": (
                "held-out predictions: ensemble mean over kept members of the fold that holds "
                "the site out"
            ),
        },
    )


def crossval_files(
    driver_path: Path | str,
    setup: str,
    schemes: Sequence[str],
    members: Sequence[int],
    keep: int,
    seed: int,
    options: train.TrainOptions,
    destination: Path | str,
    report: Path | str,
) -> None:
    """Entry point of the fluxnet_crossval rule: train all folds of a setup, predict the held-out
    sites."""
    with xr.open_dataset(driver_path) as data:
        drv = data.load()
    runs = fold_runs(drv, schemes, members)
    logger.info("%s: %d runs (%s) in one program", setup, len(runs), ", ".join(schemes))
    nets, standardizers, final = train_folds(drv, setup, runs, seed, options)
    kept = kept_runs(runs, final, keep)
    write_netcdf(predict_heldout(drv, setup, runs, nets, standardizers, kept, seed), destination)
    rows = run_records(runs, final, kept)
    with atomic_path(report) as tmp:
        tmp.write_text(json.dumps({"setup": setup, "runs": rows}, indent=1, allow_nan=True))


# ---- per-site calibration (the upper bound)
