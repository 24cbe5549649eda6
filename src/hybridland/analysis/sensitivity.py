"""Which parameters the twin's observations can see: perturb the truth, rerun DALEC, compare.

A parameter can only be identifiable if changing it changes what is observed.
For each of the 40 parameters, every sampled cell's true value is moved up and
down by ``step`` of its log range (the network's bounds are log-uniform,
spec 4.2), DALEC993 runs with both, and each observed target's change is
measured against the target's own spread:

    sensitivity(p, k) = RMS(y_k(p+) - y_k(p-)) / 2 / SD(observed y_k)

over the cells (and months, years or patches) where target k is observed. A
parameter is *visible* when its largest sensitivity over the targets reaches
``threshold``. The scorecard compares that set with the identifiable one.

The pairs of parameters the observations see only together at the truth come
from the same Fisher analysis the identifiability rule runs at the learned
parameters (:func:`hybridland.analysis.fisher.equifinal_pairs`), on the same
sampled cells as the perturbations; the scorecard checks that the learned
analysis flags them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hybridland.analysis import fisher
from hybridland.analysis.kernel_shap import sample_cells
from hybridland.data.driver import parameters_at_cells
from hybridland.io import write_csv
from hybridland.model import parameters
from hybridland.model.loss import LossConfig
from hybridland.training import evaluate

logger = logging.getLogger(__name__)

DEFAULT_STEP = 0.05  # share of the log range moved up and down
DEFAULT_THRESHOLD = 0.05  # largest normalised change that makes a parameter visible
COLUMNS = ["parameter", "target", "sensitivity"]
TRUTH = "truth"  # setup and member of the rows of truth_metrics


def perturbed(values: np.ndarray, name: str, step: float) -> tuple[np.ndarray, np.ndarray]:
    """``values`` of parameter ``name`` moved down and up by ``step`` of its log range, kept in
    bounds."""
    info = parameters.BY_NAME[name]
    factor = (info.maximum / info.minimum) ** step
    values = np.asarray(values, np.float64)
    return np.clip(values / factor, info.minimum, info.maximum), np.clip(
        values * factor, info.minimum, info.maximum
    )


def target_changes(
    down: Mapping[str, tuple[np.ndarray, np.ndarray]],
    up: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> dict[str, float]:
    """Normalised change per target from two :func:`hybridland.training.evaluate.target_pairs`
    results.

    Both results hold the same observed values (same driver, same cells), so
    their pairs line up; a target without spread gets NaN.
    """
    out = {}
    for name, (observed, low) in down.items():
        high = up[name][1]
        spread = np.std(observed)
        out[name] = (
            float(np.sqrt(np.mean((high - low) ** 2)) / 2.0 / spread)
            if spread > 0
            else float("nan")
        )
    return out


def sensitivities(
    driver: xr.Dataset, truth: Mapping[str, np.ndarray], step: float = DEFAULT_STEP
) -> pd.DataFrame:
    """Rows ``parameter, target, sensitivity`` for every parameter and observed target of
    ``driver``.

    ``truth`` holds the 40 true parameters at the driver's cells, (cell,) each.
    """
    every = np.ones(driver.sizes["cell"], bool)
    rows = []
    for name in parameters.NAMES:
        low, high = perturbed(truth[name], name, step)
        runs = [
            evaluate.target_pairs(
                driver, evaluate.simulate_cells(driver, {**truth, name: v}), every
            )
            for v in (low, high)
        ]
        rows += [(name, target, value) for target, value in target_changes(*runs).items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def visible(table: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> pd.Series:
    """Parameter -> whether its largest sensitivity over the targets reaches ``threshold``."""
    largest = table.groupby("parameter", sort=False)["sensitivity"].max()
    return largest.reindex(list(parameters.NAMES)).fillna(0.0) >= threshold


def truth_metrics(driver: xr.Dataset, truth: Mapping[str, np.ndarray], grid: str) -> pd.DataFrame:
    """Skill of DALEC993 run on the driver's grid with the twin's true parameters (each cell's
    mean of the finer truth), on the test cells and on all cells, in the columns of
    metrics.csv (setup and member ``truth``).

    The twin observes the truth run on its finer grid, averaged onto this one. Where a cell
    mixes land covers, the mean of the parameters does not give the mean of the outputs,
    so this is the skill of a model that recovered the true maps exactly: a model fitted
    to the observations can beat it, by learning parameters that differ from the true maps.
    With ``driver.observations: grid_truth`` the observations are made on this grid, and
    this is the skill the noise leaves (:mod:`hybridland.data.twin.grid_truth`).
    """
    masks = {
        "test": np.asarray(driver.test.values, bool),
        "all": np.ones(driver.sizes["cell"], bool),
    }
    rows = evaluate.split_metrics(driver, evaluate.simulate_cells(driver, truth), masks)
    return rows.assign(grid=grid, setup=TRUTH, member=TRUTH)[list(evaluate.METRIC_COLUMNS)]


def sensitivity_file(
    driver_path: Path | str,
    truth_nc: Path | str,
    out_csv: Path | str,
    pairs_csv: Path | str,
    loss: LossConfig,
    *,
    skill_csv: Path | str | None = None,
    fisher_threshold: float = fisher.DEFAULT_THRESHOLD,
    n_cells: int = 200,
    step: float = DEFAULT_STEP,
    seed: int = 0,
) -> None:
    """Entry point of the sensitivity rule for one grid: write ``parameter, target,
    sensitivity``, the truth's equifinal pairs (``parameter_a, parameter_b, value``) and,
    with ``skill_csv``, the skill of the truth itself on this grid
    (:func:`truth_metrics`)."""
    with xr.open_dataset(driver_path) as opened:
        driver = opened.load()
    with xr.open_dataset(truth_nc) as opened:
        truth = parameters_at_cells(opened.load(), driver, truth_nc)
    if skill_csv is not None:
        skill = truth_metrics(driver, truth, driver.attrs.get("grid", ""))
        write_csv(skill, skill_csv)
        pooled = skill[(skill.split == "test") & (skill.metric == evaluate.POOLED)]
        logger.info(
            "the truth on this grid, test r2_score: %s",
            ", ".join(f"{v} {r:.3f}" for v, r in zip(pooled.variable, pooled.r2_score)),
        )
    candidates = np.flatnonzero(~driver.test.values.astype(bool))
    cells = sample_cells(candidates, n_cells, np.random.default_rng([seed, 3]))
    logger.info(
        "%s: perturbing %d parameters by +-%g of their log range on %d cells",
        driver_path,
        len(parameters.NAMES),
        step,
        cells.size,
    )
    sampled, true = driver.isel(cell=cells), {k: v[cells] for k, v in truth.items()}
    table = sensitivities(sampled, true, step)
    write_csv(table, out_csv)
    shown = visible(table)
    logger.info(
        "visible at %g: %d of %d (%s)",
        DEFAULT_THRESHOLD,
        int(shown.sum()),
        shown.size,
        ", ".join(shown.index[shown]),
    )
    found = fisher.pooled_sensitivity(sampled, true, loss)
    pairs = fisher.equifinal_pairs(found, parameters.NAMES, fisher_threshold)
    write_csv(pairs, pairs_csv)
    logger.info(
        "seen only together at the truth: %s",
        "; ".join(f"{a} x {b}" for a, b, _ in pairs.itertuples(index=False)) or "none",
    )
