"""Identifiability: how consistently the kept ensemble members agree on each parameter.

Each kept member of a setup predicts all 40 parameters (process parameters,
initial pools and phenology phases) on every driver cell. Their spread is the
pixelwise coefficient of variation, CV = std / |mean| over members (population
std, as in the parameter maps). A parameter is identifiable when the spatial
median of its CV lies below a threshold (0.5 in the reference study): members
trained from different initialisations and dev splits then agree on it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from hybridland.analysis import plots
from hybridland.io import write_csv, write_netcdf
from hybridland.model import parameters
from hybridland.training.members import MemberFiles, kept_files

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from hybridland.training import train

logger = logging.getLogger(__name__)

COLUMNS = ("setup", "parameter", "median_cv", "identifiable")
DEFAULT_THRESHOLD = 0.5


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


def coefficient_of_variation(stack: xr.Dataset) -> xr.Dataset:
    """Pixelwise std / |mean| over ``member`` of every variable; (cell,).

    Members that agree exactly give 0, even where the mean is 0; a nonzero
    spread around a zero mean gives inf. NaN stays NaN.
    """
    mean, std = stack.mean("member"), stack.std("member")
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


def summary(cv: xr.Dataset, setup: str, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Rows ``setup, parameter, median_cv, identifiable`` (median_cv < threshold), in table
    order."""
    if not threshold > 0:
        raise ValueError(f"identifiability threshold must be positive, got {threshold}")
    medians = median_cv(cv)
    return pd.DataFrame(
        {
            "setup": setup,
            "parameter": medians.index,
            "median_cv": medians.to_numpy(),
            "identifiable": medians.to_numpy() < threshold,
        },
        columns=list(COLUMNS),
    )


def bars_figure(table: pd.DataFrame, threshold: float) -> Figure:
    """One panel per setup: median CV of each parameter, sorted, with the threshold line."""
    names = list(dict.fromkeys(table["setup"]))
    fig, axes = plots.new_figure(
        1, max(len(names), 1), panel=(3.6, 0.16 * table["parameter"].nunique() + 1.2)
    )
    for ax, setup in zip(axes[0], names):
        rows = table[table["setup"] == setup].sort_values(
            "median_cv", ascending=False, na_position="first"
        )
        colors = np.where(rows["identifiable"], "C0", "0.65")
        ax.barh(rows["parameter"], rows["median_cv"].fillna(0.0), color=colors)
        ax.axvline(
            threshold, color="C3", linestyle="--", linewidth=1.0, label=f"threshold {threshold:g}"
        )
        ax.set_title(setup, fontsize="medium")
        ax.set_xlabel("spatial median CV across members")
        ax.tick_params(axis="y", labelsize="x-small")
    if names:
        axes[0, 0].legend(fontsize="small", frameon=False, loc="lower right")
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


def setup_cv(driver: xr.Dataset, files: MemberFiles, setup: str) -> xr.Dataset:
    """Load a setup's members, check they belong to it, and return their CV per cell."""
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
    return coefficient_of_variation(member_parameter_stack(driver, members))


def identifiability_files(
    driver_path: Path | str,
    member_files_by_setup: Mapping[str, MemberFiles],
    grid: str,
    threshold: float,
    out_csv: Path | str,
    figure_stem: Path | str,
    out_cv_nc: Path | str | None = None,
    selected: Mapping[str, Path | str] | None = None,
) -> None:
    """Entry point of the identifiability rule for one grid.

    Args:
        driver_path: ``results/{study}/driver/{grid}.nc``.
        member_files_by_setup: setup -> (weights.npz, member.json) of its
            members, ``results/{study}/train/{grid}/{setup}/memberNN/``.
        grid: the grid name, checked against the driver's ``grid`` attribute.
        threshold: a parameter is identifiable when its median CV is below it (config).
        out_csv: ``results/{study}/identifiability/{grid}/summary.csv``, columns
            ``setup, parameter, median_cv, identifiable``, setups in the order given.
        figure_stem: bar chart of median CV per setup (``.png`` and ``.pdf``).
        out_cv_nc: optional CV maps on (setup, lat, lon), one variable per parameter.
        selected: optional setup -> ``selected.json`` of select_members; when
            given, only the kept members of each setup count.
    """
    if not member_files_by_setup:
        raise ValueError(f"{grid}: no setups for identifiability")
    with xr.open_dataset(driver_path) as opened:
        driver = opened.load()
    if driver.attrs.get("grid", grid) != grid:
        raise ValueError(
            f"{driver_path}: driver is for grid {driver.attrs['grid']!r}, not {grid!r}"
        )
    tables, maps = [], []
    for setup, files in member_files_by_setup.items():
        if selected is not None:
            files = kept_files(selected[setup], files)
        cv = setup_cv(driver, files, setup)
        tables.append(summary(cv, setup, threshold))
        if out_cv_nc is not None:
            maps.append(cv_maps(cv, driver).expand_dims(setup=[setup]))
    table = pd.concat(tables, ignore_index=True)
    write_csv(table, out_csv)
    if out_cv_nc is not None:
        cvs = xr.concat(maps, dim="setup")
        cvs.attrs = {
            "Conventions": "CF-1.8",
            "grid": grid,
            "threshold": threshold,
            "title": f"hybridland coefficient of variation of parameters across members, {grid}",
        }
        write_netcdf(cvs, out_cv_nc)
    plots.save_figure(bars_figure(table, threshold), figure_stem)
    for setup, part in table.groupby("setup", sort=False):
        logger.info(
            "%s/%s: %d of %d parameters identifiable",
            grid,
            setup,
            int(part["identifiable"].sum()),
            len(part),
        )
