"""Held-out scores per site, their medians, pooled metrics and the figure."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hybridland.io import write_csv
from hybridland.studies.fluxnet.sites import (
    CALIBRATION,
    CALIBRATION_SETUP,
    GRID,
    HELDOUT_COLUMNS,
    MEDIAN_COLUMNS,
    MONTHLY_TARGETS,
    SCHEMES,
)
from hybridland.training import evaluate, skill

logger = logging.getLogger(__name__)


def site_scores(obs: np.ndarray, sim: np.ndarray) -> dict[str, float]:
    """NSE, Pearson r and RMSE of one site's monthly series over finite pairs."""
    return {
        "nse": skill.r2_score(obs, sim),
        "r": skill.pearson_r(obs, sim),
        "rmse": skill.rmse(obs, sim),
    }


def test_observations(drv: xr.Dataset) -> dict[str, np.ndarray]:
    """Observed targets on test months only, (cell, time); NaN elsewhere."""
    test = drv.test_month.values
    return {t: np.where(test, drv[t].values, np.nan) for t in MONTHLY_TARGETS}


def heldout_table(drv: xr.Dataset, predictions: Sequence[xr.Dataset]) -> pd.DataFrame:
    """Per scheme, setup, site and target: NSE, r and RMSE on the site's test months."""
    obs = test_observations(drv)
    rows = []
    for pred in predictions:
        for scheme in pred.scheme.values:
            for c, site in enumerate(drv.site.values):
                for t in MONTHLY_TARGETS:
                    scores = site_scores(obs[t][c], pred[t].sel(scheme=scheme).values[c])
                    rows.append(
                        {
                            "scheme": str(scheme),
                            "setup": pred.attrs["setup"],
                            "site": str(site),
                            "variable": t,
                            **scores,
                        }
                    )
    return pd.DataFrame(rows, columns=list(HELDOUT_COLUMNS))


def medians(table: pd.DataFrame) -> pd.DataFrame:
    """Median over sites of NSE, r and RMSE per scheme, setup and variable (sites with a finite NSE
    counted)."""
    grouped = table.groupby(["scheme", "setup", "variable"], sort=False)
    out = grouped[["nse", "r", "rmse"]].median().add_prefix("median_").reset_index()
    out["sites"] = grouped["nse"].count().to_numpy()
    return out[list(MEDIAN_COLUMNS)]


def pooled_metrics(
    drv: xr.Dataset, predictions: Sequence[xr.Dataset], scheme: str = "leave_site_out"
) -> pd.DataFrame:
    """metrics.csv rows: test-month skill pooled over all held-out sites of ``scheme``, one ensemble
    row per setup and target."""
    obs = test_observations(drv)
    rows = []
    for pred in predictions:
        if scheme not in pred.scheme.values:
            continue
        for t in MONTHLY_TARGETS:
            o, s = obs[t], pred[t].sel(scheme=scheme).values
            n = int(np.sum(np.isfinite(o) & np.isfinite(s)))
            rows.append(
                {
                    "grid": GRID,
                    "setup": pred.attrs["setup"],
                    "member": "ensemble",
                    "variable": t,
                    "split": "test",
                    "metric": evaluate.POOLED,
                    "r2_score": skill.r2_score(o, s),
                    "explained_variance": skill.explained_variance(o, s),
                    "n": n,
                }
            )
    return pd.DataFrame(rows, columns=list(evaluate.METRIC_COLUMNS))


# Scores are written to six significant digits.
FLOAT_FORMAT = "%.6g"


def evaluate_files(
    driver_path: Path | str,
    crossval: Sequence[Path | str],
    calibration: Path | str,
    heldout: Path | str,
    median_table: Path | str,
    metrics: Path | str,
    more_calibrations: Sequence[Path | str] = (),
) -> None:
    """Entry point of the fluxnet_evaluate rule: held-out-site scores, their medians and
    metrics.csv. ``more_calibrations``: other setups' per-site calibrations (dynamic hybrids),
    scored under the same scheme."""
    with xr.open_dataset(driver_path) as data:
        drv = data.load()
    predictions = [xr.open_dataset(p).load() for p in crossval]
    per_site = [xr.open_dataset(p).load() for p in [calibration, *more_calibrations]]
    table = heldout_table(drv, predictions + per_site)
    write_csv(table, heldout, FLOAT_FORMAT)
    write_csv(medians(table), median_table, FLOAT_FORMAT)
    write_csv(pooled_metrics(drv, predictions), metrics, FLOAT_FORMAT)
    logger.info("scored %d (scheme, setup, site, variable) rows", len(table))


# ---- figure


def figure(median_table: pd.DataFrame, table: pd.DataFrame):
    """Held-out NSE per setup and scheme (site values and medians), per-site calibration as the
    reference line."""
    from hybridland.analysis import plots

    fig, axes = plots.new_figure(1, len(MONTHLY_TARGETS), panel=(3.0, 3.4), sharey=True)
    networks = table[table.scheme != CALIBRATION]
    setups = list(dict.fromkeys(networks.setup))
    colours = {"leave_cluster_out": "tab:orange", "leave_site_out": "tab:blue"}
    for ax, target in zip(axes[0], MONTHLY_TARGETS):
        for k, scheme in enumerate(SCHEMES):
            for j, setup in enumerate(setups):
                x = j + (k - 0.5) * 0.3
                rows = networks[
                    (networks.scheme == scheme)
                    & (networks.setup == setup)
                    & (networks.variable == target)
                ]
                ax.scatter(
                    np.full(len(rows), x),
                    rows.nse.clip(lower=-1.0),
                    s=6,
                    color=colours[scheme],
                    alpha=0.35,
                )
                med = median_table[
                    (median_table.scheme == scheme)
                    & (median_table.setup == setup)
                    & (median_table.variable == target)
                ]
                ax.scatter(
                    [x],
                    med.median_nse.clip(lower=-1.0),
                    marker="D",
                    s=28,
                    color=colours[scheme],
                    label=scheme.replace("_", " ") if j == 0 else None,
                )
        upper = median_table[
            (median_table.scheme == CALIBRATION)
            & (median_table.setup == CALIBRATION_SETUP)
            & (median_table.variable == target)
        ]
        ax.axhline(
            float(upper.median_nse.iloc[0]),
            color="k",
            ls="--",
            lw=1,
            label="per-site calibration (median)",
        )
        ax.axhline(0.0, color="0.7", lw=0.8)
        ax.set_xticks(range(len(setups)), setups, rotation=45, ha="right", fontsize="small")
        ax.set_title(target)
        ax.set_ylim(-1.05, 1.0)
    axes[0, 0].set_ylabel("held-out NSE, test years (clipped at -1)")
    axes[0, 0].legend(fontsize="x-small", loc="lower left")
    return fig


def figure_files(heldout: Path | str, median_table: Path | str, stem: Path | str) -> None:
    """Entry point of the fluxnet_figure rule: PNG and PDF of :func:`figure`."""
    from hybridland.analysis import plots

    plots.save_figure(figure(pd.read_csv(median_table), pd.read_csv(heldout)), stem)
