"""One comparison of every model the study trains: hybrids, dynamic hybrids, pure ML, CONTROL.

Per model and target, two held-out scores side by side: the pooled R2 (NSE over
all held-out pairs, ``r2_score_pooled`` rows of ``metrics.csv``) and the median
over cells or sites of each one's temporal NSE (``nse_cell_median`` rows on a
gridded study; the median over held-out sites of ``heldout_medians.csv`` on
FLUXNET16, one row per scheme, per-site calibration included). Models are
named by their ``setup``; :func:`model_kind` sorts them into the families the
report compares.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hybridland.analysis import plots
from hybridland.io import write_csv

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = ("scheme", "grid", "model", "kind", "variable", "r2_score_pooled", "nse_median")
POOLED, CELL_MEDIAN = "r2_score_pooled", "nse_cell_median"  # metrics.csv's `metric` values
TEST_PATCHES = "test_patches"  # the gridded studies' one scheme: the fixed test patches
POOLED_SCHEME = "leave_site_out"  # FLUXNET16's metrics.csv pools this scheme's sites
PURE_ML = ("LSTM", "ConvLSTM")
PHYSICS_ENCODED = ("ConvLSTM+DALEC",)
NETWORK_PROCESSES = ("beta-nn", "gppet-nn")  # a network replaces part of DALEC
KINDS = (
    "control",
    "static hybrid",
    "dynamic hybrid",
    "pure ML",
    "physics-encoded ML",
    "per-site calibration",
)


def model_kind(model: str) -> str:
    """The family a model belongs to, from its setup name."""
    if model == "CONTROL":
        return "control"
    if model in PURE_ML:
        return "pure ML"
    if model in PHYSICS_ENCODED:
        return "physics-encoded ML"
    if model.endswith("+dyn") or model in NETWORK_PROCESSES:
        return "dynamic hybrid"
    if model == "per_site":
        return "per-site calibration"
    return "static hybrid"


def compared_models(models: list[str], full_setup: str) -> list[str]:
    """The models the comparison shows: CONTROL, the full static setup and every model that is
    not a factorial setup (the baselines and dynamic hybrids), in kind order."""
    shown = [
        m for m in dict.fromkeys(models) if m == full_setup or model_kind(m) != "static hybrid"
    ]
    return sorted(shown, key=lambda m: (KINDS.index(model_kind(m)), m))


def gridded_table(metrics: pd.DataFrame, full_setup: str) -> pd.DataFrame:
    """Rows of :data:`COLUMNS` from a gridded study's ``metrics.csv`` (ensemble, test split)."""
    test = metrics[(metrics.member.astype(str) == "ensemble") & (metrics.split == "test")]
    test = test[test.setup.isin(compared_models(list(test.setup), full_setup))]
    wide = test.pivot_table(
        index=["grid", "setup", "variable"], columns="metric", values="r2_score", sort=False
    ).reset_index()
    return pd.DataFrame(
        {
            "scheme": TEST_PATCHES,
            "grid": wide.grid,
            "model": wide.setup,
            "kind": wide.setup.map(model_kind),
            "variable": wide.variable,
            "r2_score_pooled": wide.get(POOLED, np.nan),
            "nse_median": wide.get(CELL_MEDIAN, np.nan),
        },
        columns=list(COLUMNS),
    )


def sites_table(metrics: pd.DataFrame, medians: pd.DataFrame, full_setup: str) -> pd.DataFrame:
    """Rows of :data:`COLUMNS` for FLUXNET16: each scheme's median NSE over held-out sites,
    with the pooled R2 of ``metrics.csv`` on the scheme it pools (:data:`POOLED_SCHEME`)."""
    shown = medians[medians.setup.isin(compared_models(list(medians.setup), full_setup))]
    pooled = metrics[(metrics.metric == POOLED) & (metrics.split == "test")]
    pooled = pooled.set_index(["setup", "variable"]).r2_score
    rows = pd.DataFrame(
        {
            "scheme": shown.scheme,
            "grid": "sites",
            "model": shown.setup,
            "kind": shown.setup.map(model_kind),
            "variable": shown.variable,
            "nse_median": shown.median_nse,
        }
    )
    keys = list(zip(rows.model, rows.variable))
    rows["r2_score_pooled"] = [
        pooled.get(key, np.nan) if scheme == POOLED_SCHEME else np.nan
        for key, scheme in zip(keys, rows.scheme)
    ]
    return rows[list(COLUMNS)].reset_index(drop=True)


def figure(table: pd.DataFrame) -> Figure:
    """One panel per target: median temporal NSE per model (bars, coloured by kind), one group
    of bars per scheme and grid; pooled R2 as black diamonds."""
    variables = list(dict.fromkeys(table.variable))
    from matplotlib.patches import Patch

    fig, axes = plots.new_figure(1, max(len(variables), 1), panel=(3.2, 3.6))
    colours = {kind: f"C{i}" for i, kind in enumerate(KINDS)}
    for ax, variable in zip(axes[0], variables):
        part = table[table.variable == variable].reset_index(drop=True)
        labels = [f"{m} ({s}, {g})" for m, s, g in zip(part.model, part.scheme, part.grid)]
        y = np.arange(len(part))
        ax.barh(y, part.nse_median.clip(lower=-1.0), color=[colours[k] for k in part.kind])
        ax.scatter(part.r2_score_pooled.clip(lower=-1.0), y, marker="D", color="k", s=14, zorder=3)
        ax.set_yticks(y, labels, fontsize="xx-small")
        ax.axvline(0.0, color="0.6", lw=0.8)
        ax.set_xlim(-1.05, 1.0)
        ax.set_title(variable)
        ax.set_xlabel("median temporal NSE (bars); pooled R2 (diamonds)", fontsize="x-small")
        ax.invert_yaxis()
    handles = [Patch(color=colours[k], label=k) for k in KINDS if k in set(table.kind)]
    axes[0, -1].legend(handles=handles, fontsize="x-small", frameon=False, loc="lower right")
    return fig


def comparison_files(
    metrics_csv: Path | str,
    full_setup: str,
    out_csv: Path | str,
    figure_stem: Path | str,
    medians_csv: Path | str | None = None,
) -> pd.DataFrame:
    """Entry point of the comparison rule: the table and its figure.

    Args:
        metrics_csv: ``results/<study>/evaluation/metrics.csv``.
        full_setup: the static hybrid shown (the factorial's full setup).
        out_csv: ``results/<study>/evaluation/comparison.csv`` (:data:`COLUMNS`).
        figure_stem: its figure (``.png`` and ``.pdf``).
        medians_csv: FLUXNET16's ``heldout_medians.csv``; None for a gridded study.
    """
    metrics = pd.read_csv(metrics_csv)
    if medians_csv is None:
        table = gridded_table(metrics, full_setup)
    else:
        table = sites_table(metrics, pd.read_csv(medians_csv), full_setup)
    if table.empty:
        raise ValueError(f"{metrics_csv}: no test rows of the compared models")
    write_csv(table, out_csv)
    plots.save_figure(figure(table), figure_stem)
    return table
