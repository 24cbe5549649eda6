"""Hierarchical partitioning: Shapley values of the predictor groups over the setup lattice.

The factorial experiment trains one setup per subset S of the predictor
groups; v(S) is a goodness of fit of setup S (CONTROL is the empty set). The
independent contribution of group g is the gain from adding g, averaged over
all orderings of the groups::

    phi_g = sum_{S not containing g} |S|! (n - |S| - 1)! / n! * (v(S + g) - v(S))

Shapley values are efficient: v(CONTROL) + sum_g phi_g = v(full). The code
checks that identity on every result, so a wrong weight or a missing subset
cannot slip through. Globally v is the ensemble skill on the test split
(``r2_score`` and ``explained_variance`` of the pooled rows, ``metric`` =
``r2_score_pooled``, of metrics.csv); per cell it is the temporal r2 of
the ensemble-mean simulation.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import ArrayLike

from hybridland.analysis import plots
from hybridland.io import write_csv, write_netcdf
from hybridland.training import evaluate, setups

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

Values = Mapping[frozenset[str], float]  # subset of groups -> goodness of fit
COLUMNS = ("variable", "metric", "component", "value")
METRICS = ("r2_score", "explained_variance")
BASELINE, FULL = "baseline", "full"
TOLERANCE = 1e-9
MAP_VARIABLES = ("lai", "sif", "et")  # targets with per-cell skill maps
NO_GROUP = -1  # dominant-group code where a cell has no partition


class PartitionError(ValueError):
    """The contributions do not add up to the full model: a bug or a corrupt input."""


def subsets(groups: Sequence[str]) -> list[frozenset[str]]:
    """All 2**n subsets of ``groups``, smallest first."""
    return [frozenset(c) for k in range(len(groups) + 1) for c in itertools.combinations(groups, k)]


def shapley_weight(size: int, n: int) -> float:
    """Share of orderings in which a group joins a given coalition of ``size`` of ``n`` groups."""
    return math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)


def _check_groups(values: Mapping[frozenset[str], object], groups: Sequence[str]) -> None:
    if not groups or len(set(groups)) != len(groups):
        raise ValueError(f"groups must be distinct and non-empty, got {list(groups)}")
    missing = [sorted(s) for s in subsets(groups) if s not in values]
    if missing:
        raise ValueError(f"goodness of fit missing for subsets {missing} of groups {list(groups)}")
    unknown = [sorted(s) for s in values if not s <= set(groups)]
    if unknown:
        raise ValueError(f"subsets {unknown} contain groups outside {list(groups)}")


def contributions(
    values: Mapping[frozenset[str], ArrayLike], groups: Sequence[str]
) -> dict[str, np.ndarray]:
    """Shapley value of every group; values may be scalars or equally shaped arrays (e.g. maps).

    NaN in any subset makes the result NaN there. The efficiency identity is
    checked wherever every subset is finite.
    """
    _check_groups(values, groups)
    v = {s: np.asarray(values[s], np.float64) for s in subsets(groups)}
    n = len(groups)
    phi = {}
    for g in groups:
        total = np.zeros(np.broadcast_shapes(*(a.shape for a in v.values())))
        for s in subsets([h for h in groups if h != g]):
            total = total + shapley_weight(len(s), n) * (v[s | {g}] - v[s])
        phi[g] = total
    check_efficiency(phi, v[frozenset()], v[frozenset(groups)], scale=_scale(v.values()))
    return phi


def _scale(arrays: Iterable[np.ndarray]) -> float:
    """Largest finite magnitude (at least 1): the tolerance is relative to the values' size."""
    return max([1.0] + [float(np.abs(a[np.isfinite(a)]).max(initial=0.0)) for a in arrays])


def check_efficiency(
    phi: Mapping[str, ArrayLike],
    baseline: ArrayLike,
    full: ArrayLike,
    *,
    tolerance: float = TOLERANCE,
    scale: float = 1.0,
) -> None:
    """Raise :class:`PartitionError` unless baseline + sum(phi) == full to ``tolerance * scale``.

    Compared wherever baseline, full and every contribution are finite.
    """
    baseline, full = np.asarray(baseline, np.float64), np.asarray(full, np.float64)
    total = baseline + sum(np.asarray(p, np.float64) for p in phi.values())
    finite = np.isfinite(total) & np.isfinite(full)
    error = np.abs(np.where(finite, total - full, 0.0))
    if error.max(initial=0.0) > tolerance * scale:
        worst = float(error.max())
        raise PartitionError(
            f"baseline + contributions of {list(phi)} differ from the full model by {worst:.3g} "
            f"(tolerance {tolerance * scale:.3g}); the partition is inconsistent"
        )


def shapley(values: Values, groups: Sequence[str]) -> dict[str, float]:
    """Independent contribution of each group; ``values`` holds v of every subset (empty = CONTROL).

    Raises:
        ValueError: a subset is missing or its value is not finite.
        PartitionError: baseline + contributions differ from v(full groups) by more than 1e-9.
    """
    _check_groups(values, groups)
    bad = {tuple(sorted(s)): v for s, v in values.items() if not math.isfinite(float(v))}
    if bad:
        raise ValueError(f"goodness of fit is not finite for subsets {bad}")
    return {g: float(v) for g, v in contributions(values, groups).items()}


# ---- global partition from the metrics table


def _ensemble_test(metrics: pd.DataFrame, grid: str, metric: str) -> pd.DataFrame:
    missing = [
        c
        for c in ("grid", "setup", "member", "variable", "split", "metric", metric)
        if c not in metrics
    ]
    if missing:
        raise ValueError(f"metrics table lacks columns {missing}")
    rows = metrics[
        (metrics["metric"] == evaluate.POOLED)
        & (metrics["grid"] == grid)
        & (metrics["member"].astype(str) == "ensemble")
        & (metrics["split"] == "test")
    ]
    duplicated = rows[rows.duplicated(["setup", "variable"])]
    if not duplicated.empty:
        raise ValueError(
            f"metrics table has repeated ensemble test rows for {grid}: "
            f"{duplicated[['setup', 'variable']].values.tolist()}"
        )
    # keep the variables in the order the table lists them
    return rows.pivot(index="variable", columns="setup", values=metric).reindex(
        pd.unique(rows["variable"])
    )


def global_partition(
    metrics: pd.DataFrame, grid: str, groups: Sequence[str], metric: str
) -> pd.DataFrame:
    """Partition of one metric per variable, from each setup's ``ensemble`` row on split ``test``.

    Returns rows ``variable, metric, component, value``; the components are
    ``baseline`` (CONTROL), each group, and ``full`` (the setup of all groups).
    A variable with a non-finite value in any setup (e.g. site targets without
    test sites) is left out, with a warning.
    """
    table = _ensemble_test(metrics, grid, metric)
    names = setups.factorial(groups)
    absent = [s for s in names if s not in table.columns]
    if absent:
        raise ValueError(f"metrics for grid {grid} lack the ensemble test rows of setups {absent}")
    rows = []
    for variable, row in table[names].iterrows():
        if not np.isfinite(row.to_numpy(np.float64)).all():
            logger.warning(
                "%s %s: %s is not finite for every setup; left out of the partition",
                grid,
                variable,
                metric,
            )
            continue
        values = {frozenset(setups.groups_of(s)): float(row[s]) for s in names}
        phi = shapley(values, groups)
        parts = (
            [(BASELINE, values[frozenset()])]
            + list(phi.items())
            + [(FULL, values[frozenset(groups)])]
        )
        rows += [(variable, metric, component, value) for component, value in parts]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def partition_table(metrics: pd.DataFrame, grid: str, groups: Sequence[str]) -> pd.DataFrame:
    """:func:`global_partition` for ``r2_score`` and ``explained_variance``, stacked."""
    return pd.concat(
        [global_partition(metrics, grid, groups, m) for m in METRICS], ignore_index=True
    )


# ---- per-cell partition from the skill maps


def _skill(maps: Mapping[str, xr.Dataset], setup: str, name: str) -> xr.DataArray:
    if setup not in maps:
        raise ValueError(f"no skill maps for setup {setup!r} (have {sorted(maps)})")
    if name not in maps[setup]:
        raise ValueError(f"skill maps of setup {setup!r} lack variable {name!r}")
    return maps[setup][name].transpose("lat", "lon")


def _aligned(
    maps: Mapping[str, xr.Dataset], names: Sequence[str], variable: str
) -> list[xr.DataArray]:
    fields = [_skill(maps, s, f"{variable}_r2") for s in names]
    try:
        return list(xr.align(*fields, join="exact"))
    except ValueError as error:
        raise ValueError(
            f"skill maps of setups {list(names)} are not on the same grid: {error}"
        ) from None


def dominant_group(phi: Mapping[str, np.ndarray]) -> np.ndarray:
    """Index (into the order of ``phi``) of the largest contribution per cell; NO_GROUP where any is
    NaN."""
    stacked = np.stack(list(phi.values()))
    valid = np.isfinite(stacked).all(axis=0)
    index = np.argmax(np.where(np.isfinite(stacked), stacked, -np.inf), axis=0)
    return np.where(valid, index, NO_GROUP).astype(np.int8)


def spatialization_share(baseline: np.ndarray, full: np.ndarray) -> np.ndarray:
    """(full - baseline) / full clipped to [0, 1]; NaN where full is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(full > 0, (full - baseline) / full, np.nan)
    return np.clip(share, 0.0, 1.0)


def cell_partition(
    maps: Mapping[str, xr.Dataset], groups: Sequence[str], variable: str
) -> xr.Dataset:
    """Per-cell partition of the temporal r2 (``<variable>_r2``) of every setup's skill maps.

    Args:
        maps: setup name -> skill maps on (lat, lon); needs every setup of
            ``setups.factorial(groups)``.
        groups: the predictor groups, in the order of the ``group`` coordinate.
        variable: a fine target, e.g. ``lai``.

    Returns:
        ``<variable>_contribution`` (group, lat, lon), ``<variable>_baseline`` and
        ``<variable>_full`` (lat, lon), ``<variable>_dominant`` (lat, lon; int8
        index into ``group``, -1 where undefined, with flag_values/flag_meanings)
        and ``<variable>_spatialization_share`` (lat, lon; in [0, 1]).
    """
    names = setups.factorial(groups)
    fields = _aligned(maps, names, variable)
    values = {
        frozenset(setups.groups_of(s)): f.values.astype(np.float64) for s, f in zip(names, fields)
    }
    phi = contributions(values, groups)
    baseline, full = values[frozenset()], values[frozenset(groups)]
    dims, coords = (
        ("lat", "lon"),
        {"lat": fields[0].lat, "lon": fields[0].lon, "group": list(groups)},
    )
    r2 = f"{variable} temporal r2"
    dominant_attrs = {
        "long_name": f"{r2}: group with the largest contribution",
        "_FillValue": np.int8(NO_GROUP),
        "flag_values": np.arange(len(groups), dtype=np.int8),
        "flag_meanings": " ".join(groups),
    }
    data = {
        f"{variable}_contribution": (
            ("group",) + dims,
            np.stack([phi[g] for g in groups]),
            {"units": "1", "long_name": f"{r2}: Shapley contribution of each predictor group"},
        ),
        f"{variable}_baseline": (dims, baseline, {"units": "1", "long_name": f"{r2} of CONTROL"}),
        f"{variable}_full": (
            dims,
            full,
            {"units": "1", "long_name": f"{r2} of {setups.setup_name(groups)}"},
        ),
        f"{variable}_dominant": (dims, dominant_group(phi), dominant_attrs),
        f"{variable}_spatialization_share": (
            dims,
            spatialization_share(baseline, full),
            {"units": "1", "long_name": f"{r2}: (full - baseline) / full, clipped to [0, 1]"},
        ),
    }
    return xr.Dataset(data, coords=coords)


# ---- figures


def bars_figure(table: pd.DataFrame) -> Figure:
    """Stacked bars per variable and metric: baseline, then each group's contribution, ending at
    full."""
    metrics = [m for m in METRICS if m in set(table["metric"])]
    fig, axes = plots.new_figure(1, max(len(metrics), 1), panel=(5.0, 3.6))
    for ax, metric in zip(axes[0], metrics):
        part = table[table["metric"] == metric]
        variables = list(dict.fromkeys(part["variable"]))
        components = [c for c in dict.fromkeys(part["component"]) if c != FULL]
        value = part.set_index(["variable", "component"])["value"]
        x, bottom = np.arange(len(variables)), np.zeros(len(variables))
        for i, component in enumerate(components):
            height = np.array([value[(v, component)] for v in variables])
            color = (
                "0.6" if component == BASELINE else plots.GROUP_COLOURS.get(component, f"C{i - 1}")
            )
            ax.bar(
                x,
                height,
                bottom=bottom,
                color=color,
                label=component,
                edgecolor="white",
                linewidth=0.5,
            )
            bottom = bottom + height
        ax.scatter(
            x,
            [value[(v, FULL)] for v in variables],
            marker="_",
            s=300,
            color="k",
            zorder=3,
            label=FULL,
        )
        ax.axhline(0.0, color="k", linewidth=0.6)
        ax.set_xticks(x, variables, rotation=45, ha="right")
        ax.set_title(f"test {metric}", fontsize="medium")
    if metrics:
        axes[0, -1].legend(
            fontsize="small", frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5)
        )
    return fig


def maps_figure(cells: xr.Dataset, variables: Sequence[str]) -> Figure:
    """Per variable: the dominant group and the share explained by parameter spatialization."""
    groups = [str(g) for g in cells["group"].values]
    fig, axes = plots.new_figure(max(len(variables), 1), 2, panel=(4.2, 3.4))
    for row, variable in zip(axes, variables):
        dominant = (
            cells[f"{variable}_dominant"]
            .astype(np.float64)
            .where(cells[f"{variable}_dominant"] >= 0)
        )
        plots.map_panel(
            row[0],
            dominant,
            title=f"{variable}: dominant group",
            cmap=plots.categorical_cmap(len(groups)),
            vmin=-0.5,
            vmax=len(groups) - 0.5,
            ticks=list(range(len(groups))),
            ticklabels=groups,
        )
        plots.map_panel(
            row[1],
            cells[f"{variable}_spatialization_share"],
            title=f"{variable}: share from spatialization",
            cmap="YlGnBu",
            vmin=0.0,
            vmax=1.0,
            label="(full - baseline) / full",
        )
    return fig


# ---- entry point


def read_metrics(path: Path | str) -> pd.DataFrame:
    """The gathered metrics CSV, ``member`` kept as text (a number or ``ensemble``)."""
    return pd.read_csv(path, dtype={"member": str})


def _read_maps(paths: Mapping[str, Path | str], names: Sequence[str]) -> dict[str, xr.Dataset]:
    absent = [s for s in names if s not in paths]
    if absent:
        raise ValueError(f"skill maps missing for setups {absent}")
    maps = {}
    for setup in names:
        with xr.open_dataset(paths[setup]) as opened:
            maps[setup] = opened.load()
    return maps


def partition_files(
    metrics_csv: Path | str,
    skill_maps: Mapping[str, Path | str],
    grid: str,
    groups: Sequence[str],
    out_csv: Path | str,
    bars_stem: Path | str,
    out_maps_nc: Path | str | None = None,
    maps_stem: Path | str | None = None,
) -> None:
    """Entry point of the partition rule for one grid.

    Args:
        metrics_csv: ``results/{study}/evaluation/metrics.csv`` (all setups, grids, members).
        skill_maps: setup -> ``results/{study}/evaluation/{grid}/{setup}/skill_maps.nc``
            for every setup of ``setups.factorial(groups)`` (others are ignored);
            empty for studies whose cells are not on a grid (sites), which get
            only the global table and bars.
        grid: the grid name, as in the metrics' ``grid`` column.
        groups: the predictor groups of the factorial experiment (config).
        out_csv: ``results/{study}/partition/{grid}/global.csv``, columns
            ``variable, metric, component, value``.
        bars_stem: stem of the bar figure (``.png`` and ``.pdf``).
        out_maps_nc, maps_stem: with skill maps, the per-cell partition of the
            temporal r2 of lai, sif and et (those present in every skill map,
            :func:`cell_partition`) and the stem of its map figure.
    """
    names = setups.factorial(groups)
    table = partition_table(read_metrics(metrics_csv), grid, groups)
    write_csv(table, out_csv)
    plots.save_figure(bars_figure(table), bars_stem)
    logger.info(
        "%s: partitioned %d variables over groups %s",
        grid,
        table["variable"].nunique(),
        list(groups),
    )
    if not skill_maps:
        return
    if out_maps_nc is None or maps_stem is None:
        raise ValueError(f"{grid}: skill maps given but no output for the per-cell partition")
    maps = _read_maps(skill_maps, names)
    variables = [v for v in MAP_VARIABLES if all(f"{v}_r2" in maps[s] for s in names)]
    if not variables:
        raise ValueError(
            f"skill maps of {grid} have none of {[f'{v}_r2' for v in MAP_VARIABLES]} in every setup"
        )
    cells = xr.merge([cell_partition(maps, groups, v) for v in variables])
    cells.attrs = {
        "Conventions": "CF-1.8",
        "grid": grid,
        "groups": " ".join(groups),
        "title": f"hybridland per-cell hierarchical partitioning of temporal r2, {grid}",
    }
    write_netcdf(cells, out_maps_nc)
    plots.save_figure(maps_figure(cells, variables), maps_stem)
