"""Identifiability: do the members agree on a parameter, and can the observations see it?

Each kept member of a setup predicts all 40 parameters (process parameters,
initial pools and phenology phases) on every driver cell. Two criteria, one
verdict per setup, criterion and parameter (summary.csv, long format):

* ``cv_published``: the spatial median of the pixelwise coefficient of variation
  across members, CV = std / |mean| (population std, as in the parameter maps),
  lies below a threshold (0.5 in the reference study): members trained from
  different initialisations and dev splits agree on it.
* ``fisher``: at the learned parameters (the members' mean) the conditional
  sensitivity of the assimilated observations, from their Fisher information
  pooled over a seeded sample of non-test cells (:mod:`hybridland.analysis.fisher`),
  reaches a threshold: the observations pin the parameter down even with the
  others free.
* ``combined``: both. The PCA and the report use this verdict.

Members can agree on a parameter no observation sees (the network's shared
initial bias); only the second criterion catches that. Pairs of parameters the
observations see only together (equifinal) are listed per setup.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from hybridland.analysis import fisher, plots
from hybridland.analysis.kernel_shap import sample_cells
from hybridland.io import write_csv, write_netcdf
from hybridland.model import parameters
from hybridland.model.loss import LossConfig
from hybridland.training.members import MemberFiles, kept_files

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from hybridland.training import train

logger = logging.getLogger(__name__)

COLUMNS = ("setup", "parameter", "median_cv", "identifiable", "criterion", "value", "threshold")
CRITERIA = ("cv_published", "fisher", "combined")
DEFAULT_THRESHOLD = 0.5
DEFAULT_CELLS = 200  # cells sampled for the Fisher criterion


def stack_parameters(
    members: Sequence[Mapping[str, np.ndarray]], numbers: Sequence[int]
) -> xr.Dataset:
    """Stack per-member parameters (name -> (cell,)) into variables of dims (member, cell).

    Every member must give every name of ``parameters.NAMES`` with the same number of cells.
    """
    if len(members) != len(numbers) or not members:
        raise ValueError(
            "need one number per member and at least one member, "
            f"got {len(members)} and {len(numbers)}"
        )
    data = {}
    for name in parameters.NAMES:
        missing = [n for n, m in zip(numbers, members) if name not in m]
        if missing:
            raise ValueError(f"members {missing} lack parameter {name!r}")
        data[name] = (
            ("member", "cell"),
            np.stack([np.asarray(m[name], np.float64) for m in members]),
            {"units": parameters.BY_NAME[name].units},
        )
    return xr.Dataset(data, coords={"member": list(numbers)})


def member_parameter_stack(driver: xr.Dataset, members: Sequence[train.Member]) -> xr.Dataset:
    """Every member's 40 parameters on every driver cell, (member, cell), with cell lat/lon as
    coordinates."""
    from hybridland.training.members import member_parameters

    numbers = [int(m.info["member"]) for m in members]
    stack = stack_parameters([member_parameters(driver, m) for m in members], numbers)
    cell = {
        k: ("cell", driver[k].values) for k in ("lat", "lon", "cell_y", "cell_x") if k in driver
    }
    return stack.assign_coords(cell)


def member_reduce(stack: xr.Dataset, statistic: Callable[..., np.ndarray]) -> xr.Dataset:
    """``statistic(name, values, axis)`` of every parameter over ``member``; (cell,)."""
    return xr.Dataset(
        {
            name: stack[name].reduce(functools.partial(statistic, name), dim="member")
            for name in stack.data_vars
        }
    )


def member_mean(stack: xr.Dataset) -> xr.Dataset:
    """The members' mean of every parameter, circular for the phases; (cell,)."""
    return member_reduce(stack, parameters.ensemble_mean)


def coefficient_of_variation(stack: xr.Dataset) -> xr.Dataset:
    """Pixelwise std / |mean| over ``member`` of every variable; (cell,).

    Members that agree exactly give 0, even where the mean is 0; a nonzero
    spread around a zero mean gives inf. NaN stays NaN. A phase is circular
    (:func:`hybridland.model.parameters.ensemble_std`): members a whole period apart agree.
    """
    mean, std = member_mean(stack), member_reduce(stack, parameters.ensemble_std)
    cv = xr.where(std == 0, 0.0, std / abs(mean)).where(mean.notnull() & std.notnull())
    for name in cv.data_vars:
        cv[name].attrs = {
            "units": "1",
            "long_name": f"{name}: coefficient of variation across members",
        }
    return cv


def median_cv(cv: xr.Dataset) -> pd.Series:
    """Spatial median CV of each parameter (NaN cells ignored), in table order."""
    names = [n for n in parameters.NAMES if n in cv] + [
        n for n in cv.data_vars if n not in parameters.NAMES
    ]
    return pd.Series(
        {
            n: float(np.nanmedian(cv[n].values)) if np.isfinite(cv[n].values).any() else np.nan
            for n in names
        },
        dtype=np.float64,
    )


def summary(
    cv: xr.Dataset,
    conditional: pd.Series,
    setup: str,
    threshold: float = DEFAULT_THRESHOLD,
    fisher_threshold: float = fisher.DEFAULT_THRESHOLD,
) -> pd.DataFrame:
    """Rows of :data:`COLUMNS` per criterion (:data:`CRITERIA` order) and parameter (table order).

    ``cv_published``: value the median CV, identifiable below ``threshold``. ``fisher``:
    value the pooled conditional sensitivity (``conditional``: parameter -> value; absent
    is NaN), identifiable when it reaches ``fisher_threshold``. ``combined``: both; no value
    or threshold of its own (NaN). ``median_cv`` is the parameter's median CV in every row.
    """
    for key, limit in (("threshold", threshold), ("fisher_threshold", fisher_threshold)):
        if not limit > 0:
            raise ValueError(f"identifiability.{key} must be positive, got {limit}")
    medians = median_cv(cv)
    seen = conditional.reindex(medians.index).to_numpy(np.float64)
    agree, sees = medians.to_numpy() < threshold, seen >= fisher_threshold
    parts = (
        ("cv_published", medians.to_numpy(), agree, threshold),
        ("fisher", seen, sees, fisher_threshold),
        ("combined", np.nan, agree & sees, np.nan),
    )
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "setup": setup,
                    "parameter": medians.index,
                    "median_cv": medians.to_numpy(),
                    "identifiable": verdict,
                    "criterion": criterion,
                    "value": value,
                    "threshold": limit,
                },
                columns=list(COLUMNS),
            )
            for criterion, value, verdict, limit in parts
        ],
        ignore_index=True,
    )


def verdicts(table: pd.DataFrame, setup: str, criterion: str) -> pd.Series:
    """Parameter -> identifiable, for one setup and criterion of a summary table."""
    rows = table[(table["setup"] == setup) & (table["criterion"] == criterion)]
    return rows.set_index("parameter")["identifiable"].astype(bool)


def fisher_table(found: fisher.Sensitivity, interval: np.ndarray) -> pd.DataFrame:
    """Rows ``parameter, marginal, conditional, conditional_p05, conditional_p95`` (pooled
    sensitivities; the conditional one's :func:`fisher.conditional_interval`), in table order."""
    return pd.DataFrame(
        {
            "parameter": list(parameters.NAMES),
            "marginal": found.marginal,
            "conditional": found.conditional,
            "conditional_p05": interval[0],
            "conditional_p95": interval[1],
        }
    )


# ---- figures

VERDICT_COLOURS = {
    "identifiable (both criteria)": "C0",
    "members agree, observations do not pin it": "C1",
    "members disagree": "0.65",
}


def _panels(n_setups: int, n_parameters: int) -> tuple[Figure, np.ndarray]:
    return plots.new_figure(1, max(n_setups, 1), panel=(3.6, 0.16 * n_parameters + 1.2))


def _legend(fig: Figure, threshold: float, marginal: bool = False) -> None:
    """Verdict colours and the threshold line (and the marginal dots and the interval of the
    conditional sensitivity), below the panels."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=k) for k, c in VERDICT_COLOURS.items()]
    handles.append(Line2D([], [], color="C3", linestyle="--", label=f"threshold {threshold:g}"))
    if marginal:
        handles.append(Line2D([], [], color="k", marker=".", linestyle="", label="marginal"))
        handles.append(
            Line2D([], [], color="0.3", marker="|", label="5-95% over resamples of the cells")
        )
    fig.legend(handles=handles, fontsize="x-small", frameon=False, loc="outside lower center")


def _colours(table: pd.DataFrame, setup: str, names: pd.Series) -> np.ndarray:
    both = verdicts(table, setup, "combined").reindex(names).to_numpy()
    agree = verdicts(table, setup, "cv_published").reindex(names).to_numpy()
    kinds = list(VERDICT_COLOURS.values())
    return np.where(both, kinds[0], np.where(agree, kinds[1], kinds[2]))


def bars_figure(table: pd.DataFrame, threshold: float) -> Figure:
    """One panel per setup: median CV of each parameter, sorted, with the threshold line;
    colours give the combined verdict."""
    rows_cv = table[table["criterion"] == "cv_published"]
    names = list(dict.fromkeys(rows_cv["setup"]))
    fig, axes = _panels(len(names), rows_cv["parameter"].nunique())
    for ax, setup in zip(axes[0], names):
        rows = rows_cv[rows_cv["setup"] == setup].sort_values(
            "median_cv", ascending=False, na_position="first"
        )
        colours = _colours(table, setup, rows["parameter"])
        ax.barh(rows["parameter"], rows["median_cv"].fillna(0.0), color=colours)
        ax.axvline(threshold, color="C3", linestyle="--", linewidth=1.0)
        ax.set_title(setup, fontsize="medium")
        ax.set_xlabel("spatial median CV across members")
        ax.tick_params(axis="y", labelsize="x-small")
    if names:
        _legend(fig, threshold)
    return fig


def fisher_figure(table: pd.DataFrame, medians: pd.DataFrame, threshold: float) -> Figure:
    """One panel per setup: pooled conditional sensitivity (bars, coloured by the combined
    verdict, with its 5-95% interval over resamples of the cells) and pooled marginal
    sensitivity (dots) of each parameter, log scale, sorted."""
    names = list(dict.fromkeys(medians["setup"]))
    fig, axes = _panels(len(names), medians["parameter"].nunique())
    for ax, setup in zip(axes[0], names):
        rows = medians[medians["setup"] == setup].sort_values("conditional")
        floor = fisher.RIDGE**0.5  # the ridge's own sensitivity: nothing is seen below it
        bars = rows["conditional"].clip(lower=floor)
        ax.barh(rows["parameter"], bars, color=_colours(table, setup, rows["parameter"]))
        low = rows["conditional_p05"].clip(lower=floor)  # the 5-95% interval over resamples
        high = rows["conditional_p95"].clip(lower=floor)
        ax.errorbar(
            bars,
            rows["parameter"],
            xerr=[bars - low, high - bars],
            fmt="none",
            ecolor="0.3",
            elinewidth=0.6,
            capsize=1.5,
        )
        ax.plot(rows["marginal"].clip(lower=floor), rows["parameter"], "k.", markersize=3)
        ax.axvline(threshold, color="C3", linestyle="--", linewidth=1.0)
        ax.set_xscale("log")
        ax.set_title(setup, fontsize="medium")
        ax.set_xlabel("conditional sensitivity (pooled Fisher information)")
        ax.tick_params(axis="y", labelsize="x-small")
    if names:
        _legend(fig, threshold, marginal=True)
    return fig


def cv_maps(cv: xr.Dataset, driver: xr.Dataset) -> xr.Dataset:
    """CV fields (cell,) placed on the driver's (lat, lon) grid, NaN off its cells."""
    shape = (driver.sizes["y"], driver.sizes["x"])
    y, x = driver.cell_y.values, driver.cell_x.values
    data = {}
    for name, field in cv.data_vars.items():
        grid = np.full(shape, np.nan)
        grid[y, x] = field.values
        data[name] = (("lat", "lon"), grid.astype(np.float32), field.attrs)
    return xr.Dataset(data, coords={"lat": driver.grid_lat.values, "lon": driver.grid_lon.values})


# ---- entry point


def setup_stack(driver: xr.Dataset, files: MemberFiles, setup: str) -> xr.Dataset:
    """Load a setup's members, check they belong to it, and stack their parameters per cell."""
    from hybridland.training.members import load_member

    members = []
    for weights, info in files:
        member = load_member(Path(weights), Path(info))
        if member.info.get("setup") != setup:
            raise ValueError(
                f"{info}: member belongs to setup {member.info.get('setup')!r}, not {setup!r}"
            )
        members.append(member)
    if len(members) < 2:
        logger.warning(
            "%s: %d member(s); a CV across fewer than two members is 0 everywhere",
            setup,
            len(members),
        )
    logger.info(
        "%s: parameters of %d members on %d cells", setup, len(members), driver.sizes["cell"]
    )
    return member_parameter_stack(driver, members)


def learned_sensitivity(
    driver: xr.Dataset, stack: xr.Dataset, config: LossConfig, n_cells: int, seed: int
) -> tuple[fisher.Sensitivity, np.ndarray]:
    """Pooled Fisher sensitivities at the members' mean parameters on a seeded sample of
    non-test cells, and the conditional sensitivity's interval over resamples of those cells
    (:func:`fisher.conditional_interval`, seeded)."""
    candidates = np.flatnonzero(~driver["test"].values.astype(bool))
    cells = sample_cells(candidates, n_cells, np.random.default_rng([seed, 11]))
    mean = member_mean(stack)
    per_cell = fisher.cell_information(
        driver.isel(cell=cells), {n: mean[n].values[cells] for n in parameters.NAMES}, config
    )
    interval = fisher.conditional_interval(per_cell, np.random.default_rng([seed, 13]))
    return fisher.sensitivity(per_cell.mean(axis=0)), interval


def identifiability_files(
    driver_path: Path | str,
    member_files_by_setup: Mapping[str, MemberFiles],
    grid: str,
    out_dir: Path | str,
    loss: LossConfig,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    fisher_threshold: float = fisher.DEFAULT_THRESHOLD,
    n_cells: int = DEFAULT_CELLS,
    seed: int = 0,
    cv_maps_nc: bool = True,
    selected: Mapping[str, Path | str] | None = None,
) -> None:
    """Entry point of the identifiability rule for one grid.

    Args:
        driver_path: ``results/{study}/driver/{grid}.nc``.
        member_files_by_setup: setup -> (weights.npz, member.json) of its
            members, ``results/{study}/train/{grid}/{setup}/memberNN/``.
        grid: the grid name, checked against the driver's ``grid`` attribute.
        out_dir: ``results/{study}/identifiability/{grid}``; receives ``summary.csv``
            (:data:`COLUMNS`, setups in the order given), ``fisher.csv`` (``setup,
            parameter, marginal, conditional, conditional_p05, conditional_p95``: pooled
            over the sampled cells, and the conditional one's 5-95% interval over
            resamples of them),
            ``equifinal_pairs.csv`` (:data:`hybridland.analysis.fisher.PAIR_COLUMNS`),
            ``median_cv.{png,pdf}``, ``fisher.{png,pdf}`` and, with ``cv_maps_nc``,
            ``cv_maps.nc`` (CV on setup, lat, lon, one variable per parameter).
        loss: the training loss (its active targets choose the observations).
        threshold: the published criterion: median CV below it (config).
        fisher_threshold: the Fisher criterion: pooled conditional sensitivity at least it.
        n_cells, seed: the sample of non-test cells the Fisher criterion uses.
        selected: optional setup -> ``selected.json`` of select_members; when
            given, only the kept members of each setup count.
    """
    if not member_files_by_setup:
        raise ValueError(f"{grid}: no setups for identifiability")
    out = Path(out_dir)
    with xr.open_dataset(driver_path) as opened:
        driver = opened.load()
    if driver.attrs.get("grid", grid) != grid:
        raise ValueError(
            f"{driver_path}: driver is for grid {driver.attrs['grid']!r}, not {grid!r}"
        )
    tables, medians, pairs, maps = [], [], [], []
    for setup, files in member_files_by_setup.items():
        if selected is not None:
            files = kept_files(selected[setup], files)
        stack = setup_stack(driver, files, setup)
        cv = coefficient_of_variation(stack)
        found, interval = learned_sensitivity(driver, stack, loss, n_cells, seed)
        seen = fisher_table(found, interval)
        conditional = seen.set_index("parameter")["conditional"]
        table = summary(cv, conditional, setup, threshold, fisher_threshold)
        equifinal = fisher.equifinal_pairs(found, parameters.NAMES, fisher_threshold)
        tables.append(table)
        medians.append(seen.assign(setup=setup)[["setup", *seen.columns]])
        pairs.append(equifinal.assign(setup=setup)[list(fisher.PAIR_COLUMNS)])
        if cv_maps_nc:
            maps.append(cv_maps(cv, driver).expand_dims(setup=[setup]))
        counts = table.groupby("criterion", sort=False)["identifiable"].sum()
        logger.info(
            "%s/%s: parameters identifiable of %d: %s; equifinal pairs: %s",
            grid,
            setup,
            len(parameters.NAMES),
            ", ".join(f"{c} {int(counts[c])}" for c in CRITERIA),
            "; ".join(f"{a} x {b} (|r| {v:.2f})" for a, b, v in equifinal.itertuples(index=False))
            or "none",
        )
    table = pd.concat(tables, ignore_index=True)
    sensitivities = pd.concat(medians, ignore_index=True)
    write_csv(table, out / "summary.csv")
    write_csv(sensitivities, out / "fisher.csv")
    write_csv(pd.concat(pairs, ignore_index=True), out / "equifinal_pairs.csv")
    if cv_maps_nc:
        cvs = xr.concat(maps, dim="setup")
        cvs.attrs = {
            "Conventions": "CF-1.8",
            "grid": grid,
            "threshold": threshold,
            "title": f"hybridland coefficient of variation of parameters across members, {grid}",
        }
        write_netcdf(cvs, out / "cv_maps.nc")
    plots.save_figure(bars_figure(table, threshold), out / "median_cv")
    plots.save_figure(fisher_figure(table, sensitivities, fisher_threshold), out / "fisher")
