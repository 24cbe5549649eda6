"""Kernel SHAP of the ensemble-mean network: which predictors drive each parameter, and how.

The reference study explains the ensemble-mean spatialization network with
Kernel SHAP (100 background cells, up to 1000 explained training cells), scales
the SHAP values of each run by their range, ranks features by their share of
total absolute SHAP, fits degree-4 polynomial ridge curves to the dependence of
SHAP on the feature value (Fig. 3 analogue) and repeats the ranking within
cells dominated by one plant functional type (conditional SHAP). In the twin
study the same procedure is applied to the TRUE parameter functions, so the
learned rankings can be scored against known ones.

The Kernel SHAP computation (what is explained, the truth, members, shares,
determinism) lies in :mod:`hybridland.analysis.kernel_shap`; this module draws
the cells, writes the tables, values and figures.

*Dependence fits.* For each parameter, the three features with the largest
ensemble shares; SHAP (scaled per run) against the raw feature value, with a
polynomial ridge fit per member (thin) and for the ensemble (thick). The fit
is ``make_pipeline(StandardScaler(), PolynomialFeatures(4), Ridge(alpha=0.5))``:
the standardisation makes ``alpha`` mean the same for MAP in mm and PFT
fractions (the reference pipeline without it is badly conditioned for
features in the thousands).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from hybridland.analysis import plots
from hybridland.analysis.identifiability import verdicts
from hybridland.analysis.kernel_shap import (
    IMPORTANCE_COLUMNS,
    Function,
    dominant_pft_cells,
    ensemble_function,
    group_table,
    importance_table,
    input_layout,
    input_table,
    kernel_shap,
    member_function,
    minmax_scale,
    rank_correlations,
    sample_cells,
    stacked,
    true_function,
)
from hybridland.contract import PREDICTOR_GROUPS, PREDICTORS
from hybridland.data import twin
from hybridland.io import write_csv, write_netcdf
from hybridland.model.parameters import KEY_QUANTITIES, check_quantities
from hybridland.training import train
from hybridland.training.members import load_kept

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

MEMBER_COLUMNS = ["setup", "member", "parameter", "feature", "share"]
CONDITIONAL_COLUMNS = ["setup", "pft", "parameter", "feature", "share"]
SIBLINGS = {
    "groups": "group_importance.csv",
    "members": "member_importance.csv",
    "conditional": "conditional_importance.csv",
    "values": "shap_values.nc",
    "truth": "truth_importance.csv",
    "truth_groups": "truth_group_importance.csv",
    "truth_rank": "truth_rank_correlation.csv",
}


def key_parameters(extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The key quantities of the reference study, then any others named (order kept, no repeats)."""
    return tuple(dict.fromkeys((*KEY_QUANTITIES, *extra)))


def identifiable(summary: pd.DataFrame, setup: str) -> list[str]:
    """The parameters the identifiability summary's ``combined`` verdict calls identifiable
    in ``setup`` (table order); none, with a note, where the summary has no such rows.

    The shap rule explains them beside the key quantities: an attribution is a finding
    about the world only where the observations pin the parameter down.
    """
    verdict = verdicts(summary, setup, "combined")
    if verdict.empty:
        logger.info(
            "%s: no identifiability verdict; only the named quantities are explained", setup
        )
    return verdict.index[verdict.to_numpy()].tolist()


# ---- dependence plots


def dependence_fit(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Degree-4 polynomial ridge fit (alpha 0.5) on the standardised feature, evaluated on
    ``grid``."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    model = make_pipeline(StandardScaler(), PolynomialFeatures(4), Ridge(alpha=0.5))
    return model.fit(np.asarray(x)[:, None], np.asarray(y)).predict(np.asarray(grid)[:, None])


def top_features(importance: pd.DataFrame, parameter: str, count: int = 3) -> list[str]:
    """The ``count`` features with the largest shares for ``parameter``."""
    part = importance[importance.parameter == parameter].dropna(subset=["share"])
    return part.nlargest(count, "share").feature.tolist()


def dependence_figure(
    feature_values: np.ndarray,
    member_values: np.ndarray,
    features: Sequence[str],
    names: Sequence[str],
    importance: pd.DataFrame,
) -> Figure:
    """SHAP (scaled per run) against the raw value of each parameter's top three features.

    Args:
        feature_values: raw explained rows (cell, feature).
        member_values: SHAP values (cell, feature, member, k).
        features, names: labels of the feature and k axes.
        importance: ensemble shares (:func:`importance_table`), for the ranking.

    Points: the ensemble; thin lines: each member's fit; thick line: the ensemble's fit.
    """
    ensemble = minmax_scale(member_values.mean(axis=2))
    members = [minmax_scale(member_values[:, :, m]) for m in range(member_values.shape[2])]
    fig, axes = plots.new_figure(len(names), 3, panel=(3.2, 2.6))
    for k, name in enumerate(names):
        top = top_features(importance, name)
        for col, ax in enumerate(axes[k]):
            if col >= len(top):
                ax.set_axis_off()
                continue
            j = features.index(top[col])
            x = feature_values[:, j]
            grid = np.linspace(x.min(), x.max(), 100)
            ax.scatter(x, ensemble[:, j, k], s=4, alpha=0.4, color="0.5", linewidths=0)
            if np.ptp(x) > 0:
                for run in members:
                    ax.plot(
                        grid,
                        dependence_fit(x, run[:, j, k], grid),
                        color="tab:blue",
                        lw=0.6,
                        alpha=0.5,
                    )
                ax.plot(grid, dependence_fit(x, ensemble[:, j, k], grid), color="k", lw=1.8)
            ax.axhline(0.0, color="0.8", lw=0.5, zorder=0)
            ax.set_xlabel(top[col])
            ax.set_ylabel(f"SHAP ({name}, scaled)" if col == 0 else "")
    _legend(axes[0, 0], len(members))
    return fig


def _legend(ax: Any, n_members: int) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color="tab:blue", lw=0.6, label=f"fit per member ({n_members})"),
        Line2D([], [], color="k", lw=1.8, label="fit of the ensemble"),
    ]
    ax.legend(handles=handles, fontsize="x-small", frameon=False)


# ---- entry point


def sibling_paths(out_csv: Path | str) -> dict[str, Path]:
    """The files :func:`explain_files` writes beside ``out_csv`` (see :data:`SIBLINGS`)."""
    return {key: Path(out_csv).with_name(name) for key, name in SIBLINGS.items()}


def conditional_table(
    function: Function,
    table: np.ndarray,
    features: Sequence[str],
    cells: Mapping[str, np.ndarray],
    names: Sequence[str],
    setup: str,
    *,
    n_background: int,
    n_explained: int,
    nsamples: int | str,
    seed: int,
) -> pd.DataFrame:
    """Shares within each PFT's dominant cells: ``setup, pft, parameter, feature, share``.

    ``function`` returns (n, k); ``table`` is the raw input matrix of all cells,
    the explained ``features`` first, then the held columns. Background and
    explained cells both come from the PFT's ``cells``, so the ranking is
    conditional on that PFT.
    """
    p, parts = len(features), [pd.DataFrame(columns=CONDITIONAL_COLUMNS)]
    for number, (pft, pft_cells) in enumerate(cells.items()):
        rng = np.random.default_rng([seed, 2, number])
        back, expl = (
            sample_cells(pft_cells, n_background, rng),
            sample_cells(pft_cells, n_explained, rng),
        )
        values = kernel_shap(
            function,
            table[back, :p],
            table[expl, :p],
            nsamples=nsamples,
            seed=seed + number + 1,
            held=table[expl, p:],
            label=f"{setup} {pft}",
        )
        parts.append(
            importance_table(values, features, names, setup).assign(pft=pft)[CONDITIONAL_COLUMNS]
        )
    return pd.concat(parts, ignore_index=True)


def explain_files(
    driver_path: Path | str,
    members: Sequence[tuple[Path | str, Path | str]],
    selected_json: Path | str,
    grid: str,
    setup: str,
    parameters: Sequence[str],
    n_background: int,
    n_explained: int,
    nsamples: int | str,
    seed: int,
    out_csv: Path | str,
    out_figure_stem: Path | str,
    truth: bool,
    *,
    pft_threshold: float = 0.8,
    min_pft_cells: int = 10,
    truth_overrides: twin.Overrides | None = None,
) -> None:
    """Entry point of the shap rule: explain the kept members of one setup on one grid.

    Inputs: the driver (``results/{study}/driver/{grid}.nc``), every member's
    (weights.npz, member.json), and ``selected.json`` naming the kept ones.
    Quantities: :func:`key_parameters` followed by ``parameters`` (config).
    Cells: background (``n_background``) and explained (``n_explained``) cells are
    drawn from the non-test cells with ``seed`` (fewer when there are fewer).

    Outputs (``out_csv``, e.g. ``results/{study}/shap/{grid}/{setup}/importance.csv``;
    the others lie beside it, :func:`sibling_paths`):
        importance.csv: ``setup, parameter, feature, share`` of the ensemble;
        group_importance.csv: ``setup, parameter, group, share`` and the group's share
            over the kept members, ``member_min, member_max, member_sd``;
        member_importance.csv: ``setup, member, parameter, feature, share``;
        conditional_importance.csv: ``setup, pft, parameter, feature, share`` for
            each PFT covering >= ``pft_threshold`` of >= ``min_pft_cells``
            non-test cells (header only when there is none);
        shap_values.nc: SHAP (cell, feature, member, parameter) and raw features;
        with ``truth``: truth_importance.csv and truth_group_importance.csv (same
            columns, the twin's true functions on the same cells and samples) and
            truth_rank_correlation.csv (``setup, parameter, spearman``);
        ``<out_figure_stem>.png`` / ``.pdf``: dependence plots.

    The truth is the study's configured one: ``truth_overrides`` (the twin
    config's), or else those of the twin's raw files beside the driver
    (:func:`recorded_overrides` of ``results/{study}/raw``).
    """
    names = key_parameters(parameters)
    check_quantities(names)
    loaded = load_kept(selected_json, members)
    if loaded[0].info["setup"] != setup:
        raise ValueError(
            f"{selected_json}: members belong to setup {loaded[0].info['setup']}, not {setup}"
        )
    features, held = input_layout(loaded[0].info["columns"], truth=truth)
    with xr.open_dataset(driver_path) as ds:
        driver = ds.load()
    table = input_table(driver, setup, int(loaded[0].info["seed"]), features + held)
    candidates = np.flatnonzero(~driver.test.values.astype(bool))
    if candidates.size < 2:
        raise ValueError(f"{driver_path}: {candidates.size} non-test cells; SHAP needs at least 2")
    rng = np.random.default_rng([seed, 1])
    cells = sample_cells(candidates, n_background, rng), sample_cells(candidates, n_explained, rng)
    logger.info(
        "%s %s: %d members, %d background and %d explained cells, features %s, quantities %s",
        grid,
        setup,
        len(loaded),
        cells[0].size,
        cells[1].size,
        ", ".join(features),
        ", ".join(names),
    )
    run = Explanation(
        table, features, features + held, cells[0], cells[1], names, setup, nsamples, seed
    )
    outputs = sibling_paths(out_csv)
    importance = _explain_members(run, loaded, Path(out_csv), outputs, grid, out_figure_stem)
    pft_cells = {
        k: np.intersect1d(v, candidates)
        for k, v in dominant_pft_cells(driver, pft_threshold).items()
    }
    conditional = conditional_table(
        ensemble_function(loaded, names, run.layout),
        table,
        features,
        {k: v for k, v in pft_cells.items() if v.size >= min_pft_cells},
        names,
        setup,
        n_background=n_background,
        n_explained=n_explained,
        nsamples=nsamples,
        seed=seed,
    )
    write_csv(conditional, outputs["conditional"])
    if truth:
        if truth_overrides is None:
            truth_overrides = recorded_overrides(Path(driver_path).parents[1] / "raw")
        _explain_truth(run, importance, outputs, truth_overrides)


class Explanation(NamedTuple):
    """One explanation: the raw input matrix of all cells and what to explain on it."""

    table: np.ndarray  # (cell, len(layout)) raw inputs, explained features first
    features: tuple[str, ...]
    layout: tuple[str, ...]
    background: np.ndarray  # cell indices
    explained: np.ndarray  # cell indices
    names: tuple[str, ...]
    setup: str
    nsamples: int | str
    seed: int

    def shap(self, function: Function, label: str) -> np.ndarray:
        p = len(self.features)
        rows = self.table[self.explained]
        return kernel_shap(
            function,
            self.table[self.background, :p],
            rows[:, :p],
            nsamples=self.nsamples,
            seed=self.seed,
            held=rows[:, p:],
            label=label,
        )


def _explain_members(
    run: Explanation,
    members: Sequence[train.Member],
    out_csv: Path,
    outputs: Mapping[str, Path],
    grid: str,
    figure_stem: Path | str,
) -> pd.DataFrame:
    """Kernel SHAP of every member in one run; write importance tables, values and figure."""
    flat = run.shap(stacked(member_function(members, run.names, run.layout)), f"{grid} {run.setup}")
    values = flat.reshape(run.explained.size, len(run.features), len(members), len(run.names))
    importance = importance_table(values.mean(axis=2), run.features, run.names, run.setup)
    write_csv(importance, out_csv)
    per_member = _member_table(values, run, members)
    write_csv(group_table(importance, per_member), outputs["groups"])
    write_csv(per_member, outputs["members"])
    rows = run.table[run.explained, : len(run.features)]
    attrs = {"grid": grid, "setup": run.setup, "seed": run.seed}
    write_netcdf(_values_dataset(values, rows, run, members, attrs), outputs["values"])
    plots.save_figure(
        dependence_figure(rows, values, run.features, run.names, importance), figure_stem
    )
    return importance


def _member_table(
    values: np.ndarray, run: Explanation, members: Sequence[train.Member]
) -> pd.DataFrame:
    parts = [
        importance_table(values[:, :, m], run.features, run.names, run.setup).assign(
            member=int(member.info["member"])
        )
        for m, member in enumerate(members)
    ]
    return pd.concat(parts, ignore_index=True)[MEMBER_COLUMNS]


def _values_dataset(
    values: np.ndarray,
    rows: np.ndarray,
    run: Explanation,
    members: Sequence[train.Member],
    attrs: Mapping[str, Any],
) -> xr.Dataset:
    return xr.Dataset(
        {
            "shap": (("cell", "feature", "member", "parameter"), values.astype(np.float32)),
            "feature_value": (("cell", "feature"), rows),
        },
        coords={
            "cell": run.explained,
            "feature": list(run.features),
            "member": [int(m.info["member"]) for m in members],
            "parameter": list(run.names),
        },
        attrs={**attrs, "description": "Kernel SHAP per kept member; their mean is the ensemble's"},
    )


def recorded_overrides(raw_dir: Path | str) -> twin.Overrides:
    """The truth overrides of the twin in ``raw_dir``, checked by recomputing its truth.

    A parameter whose drivers recorded in ``truth_parameters.nc`` differ from the
    designed ones is overridden by its recorded group (``none`` when constant),
    seeded by the file's ``seed``. The span is not recorded: the default one is
    taken. The truth recomputed from ``truth_predictors.nc`` must equal the
    recorded one; else ValueError (pass the twin config's overrides instead).
    """
    paths = {k: Path(raw_dir) / twin.FILENAMES[k] for k in ("truth_parameters", "truth_predictors")}
    designed, recorded = twin.drivers(), twin.truth_drivers(paths["truth_parameters"])
    groups = {n: (g[0] if g else "none") for n, g in recorded.items() if g != designed[n]}
    with xr.open_dataset(paths["truth_parameters"], decode_times=False) as ds:
        stored, seed = ds.load(), int(ds.attrs["seed"])
    overrides = twin.Overrides(groups, seed=seed)
    with xr.open_dataset(paths["truth_predictors"], decode_times=False) as ds:
        land = ds.land_mask.values.astype(bool)
        again = twin.true_parameters({c: ds[c].values[land] for c in PREDICTORS}, overrides)
    differ = [
        n for n in again if not np.allclose(stored[n].values[land], again[n], rtol=1e-5, atol=0)
    ]
    if differ:
        raise ValueError(
            f"{paths['truth_parameters']}: the overrides {groups} do not reproduce the true"
            f" {', '.join(differ)}; pass the twin config's truth overrides"
        )
    return overrides


def _explain_truth(
    run: Explanation,
    learned: pd.DataFrame,
    outputs: Mapping[str, Path],
    overrides: twin.Overrides,
) -> None:
    """The same Kernel SHAP procedure on the twin's true functions, and its agreement with
    ``learned``."""
    values = run.shap(true_function(run.names, run.layout, overrides), f"{run.setup} truth")
    true = importance_table(values, run.features, run.names, run.setup)
    write_csv(true, outputs["truth"])
    write_csv(group_table(true), outputs["truth_groups"])
    ranks = rank_correlations(learned, true)
    logger.info(
        "%s: Spearman of learned vs true shares: %s",
        run.setup,
        ", ".join(f"{r.parameter} {r.spearman:.2f}" for r in ranks.itertuples()),
    )
    write_csv(ranks, outputs["truth_rank"])


# ---- all explained setups of a grid


def _group_rank(group: str) -> tuple[int, str]:
    """Predictor groups in the contract's order, then any other (LATLON, CONTROL) by name."""
    order = list(PREDICTOR_GROUPS)
    return (order.index(group), "") if group in order else (len(order), group)


def group_shares_figure(groups: pd.DataFrame) -> Figure:
    """Side-by-side bars: each predictor group's share of total absolute SHAP (ensemble), per
    quantity and setup, with whiskers from the lowest to the highest member's share where
    the table has them."""
    setups_ = list(dict.fromkeys(groups.setup))
    fig, axes = plots.new_figure(1, len(setups_), panel=(6.0, 3.2))
    handles = {}
    for ax, setup in zip(axes[0], setups_):
        part = groups[groups.setup == setup]
        order = list(dict.fromkeys(part.parameter))
        names = sorted(set(part.group), key=_group_rank)
        width = 0.8 / len(names)
        x = np.arange(len(order))
        for i, group in enumerate(names):
            rows = part[part.group == group].set_index("parameter").reindex(order)
            at = x - 0.4 + (i + 0.5) * width
            share = rows.share.fillna(0.0).to_numpy()
            handles[group] = ax.bar(
                at, share, width, label=group, color=plots.GROUP_COLOURS.get(group, "0.5")
            )
            if {"member_min", "member_max"} <= set(rows.columns):
                ax.vlines(at, rows.member_min, rows.member_max, color="k", linewidth=0.7)
        ax.set_xticks(x, order, rotation=60, ha="right", rotation_mode="anchor")
        ax.set_title(f"{setup} (whiskers: member range)")
        ax.set_ylabel("share of total |SHAP|")
        ax.tick_params(axis="x", labelsize="x-small")
    axes[0, -1].legend(
        handles=[handles[g] for g in sorted(handles, key=_group_rank)],
        fontsize="x-small",
        frameon=False,
        bbox_to_anchor=(1.0, 1.0),
        loc="upper left",
    )
    return fig


def gather_files(
    importance: Sequence[Path | str],
    groups: Sequence[Path | str],
    out_csv: Path | str,
    figure_stem: Path | str,
) -> None:
    """Entry point of the gather_shap rule: one importance table and one group-share figure per
    grid."""
    table = pd.concat([pd.read_csv(p) for p in importance], ignore_index=True)[IMPORTANCE_COLUMNS]
    write_csv(table, Path(out_csv))
    plots.save_figure(
        group_shares_figure(pd.concat([pd.read_csv(p) for p in groups], ignore_index=True)),
        figure_stem,
    )
