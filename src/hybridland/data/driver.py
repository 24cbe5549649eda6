"""Assemble the model driver of one study and grid from its regridded products.

The driver holds, per valid land cell, the predictors, the forcing the DALEC
step reads, the fine targets, each cell's patch and whether that patch is in the
fixed test set; coarse targets (NBE, EWT anomaly) are held per patch. Cells are
stacked along ``cell``; ``cell_y``/``cell_x`` place them back on the grid.
Patches come from a global lattice of ``patch_deg`` boxes anchored at 90S 180W,
so a 4 x 5 degree lattice reproduces the published global patches.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from hybridland.contract import (
    COARSE_TARGETS,
    DAYS_PER_YEAR_MAP,
    EPOCH,
    FINE_TARGETS,
    FORCING,
    PFT,
    PREDICTORS,
    SITE_TARGETS,
    SOIL,
    STATIC_TARGETS,
    TARGETS,
)
from hybridland.data import validate
from hybridland.data.grids import Grid
from hybridland.data.validate import DriverError
from hybridland.io import open_netcdf, write_netcdf
from hybridland.model import parameters

logger = logging.getLogger(__name__)

__all__ = ["DriverError"]  # raised by every function here (defined in validate)


OBSERVATIONS = ("products", "grid_truth")  # values of DriverOptions.observations


@dataclass(frozen=True)
class DriverOptions:
    patch_deg: tuple[float, float]
    min_patch_fraction: float
    land_threshold: float
    test_fraction: float
    delta_t: str | int
    max_infinite_share: float = validate.DEFAULT_MAX_INFINITE_SHARE
    # products: the regridded products' observations; grid_truth (twins): the truth made on
    # the driver's cells (hybridland.data.twin.grid_truth)
    observations: str = "products"

    def __post_init__(self) -> None:
        if self.observations not in OBSERVATIONS:
            raise DriverError(
                f"driver.observations: {self.observations!r} is not one of {list(OBSERVATIONS)}"
            )

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any]) -> DriverOptions:
        return cls(**{**mapping, "patch_deg": tuple(float(v) for v in mapping["patch_deg"])})


def monthly_calendar(first_year: int, last_year: int) -> pd.DataFrame:
    """Per month: mid-month time, days since 2000-01-01 and day of year (means over the month's
    days)."""
    starts = pd.date_range(f"{first_year}-01-01", f"{last_year}-12-01", freq="MS")
    length = starts.days_in_month.to_numpy()
    offset = (length - 1) / 2.0
    return pd.DataFrame(
        {
            "time": starts + pd.to_timedelta(length / 2.0, unit="D"),
            "days": (starts - EPOCH).days.to_numpy() + offset,
            "doy": starts.day_of_year.to_numpy() + offset,
            "days_in_month": length.astype(float),
            "year": starts.year,
            "month": starts.month,
        }
    )


def check_grid(name: str, data: xr.Dataset, grid: Grid) -> None:
    for axis, expected in (("lat", grid.lat), ("lon", grid.lon)):
        if axis not in data.coords or not np.allclose(data[axis].values, expected, atol=1e-9):
            raise DriverError(f"{name}: {axis} does not match the {grid.name} grid of the study")


def check_months(
    name: str, data: xr.Dataset, calendar: pd.DataFrame, *, annual: bool = False
) -> None:
    """The product's time axis must be the study's months (or years)."""
    times = pd.DatetimeIndex(data["time"].values)
    expected = sorted(set(calendar.year)) if annual else list(zip(calendar.year, calendar.month))
    got = list(times.year) if annual else list(zip(times.year, times.month))
    if got != expected:
        raise DriverError(
            f"{name}: time axis ({len(got)} steps, {got[0] if got else 'none'} to "
            f"{got[-1] if got else 'none'}) "
            f"differs from the study period ({len(expected)} steps, {expected[0]} to "
            f"{expected[-1]})"
        )


def source_of(dataset: xr.Dataset, name: str) -> str:
    """The file a product was read from, or its name when it was built in memory."""
    return str(dataset.encoding.get("source", f"regridded dataset '{name}'"))


def variable(data: Mapping[str, xr.Dataset], dataset: str, name: str) -> xr.DataArray:
    if dataset not in data:
        raise DriverError(
            f"regridded dataset '{dataset}' is missing; the driver needs it for '{name}'"
        )
    if name not in data[dataset]:
        file = data[dataset].encoding.get("source")
        raise DriverError(
            f"regridded dataset '{dataset}' lacks variable '{name}'"
            + (f" (file {file}); delete the file and rerun" if file else "")
        )
    return data[dataset][name]


def predictor_maps(data: Mapping[str, xr.Dataset]) -> dict[str, xr.DataArray]:
    """Every predictor on the grid, (lat, lon)."""
    fractions = variable(data, "landcover", "pft_fraction")
    maps = {p: fractions.sel(pft=p, drop=True) for p in PFT}
    t_air = 0.5 * (variable(data, "forcing", "t_min") + variable(data, "forcing", "t_max"))
    maps["MAT"] = t_air.mean("time")
    maps["MAP"] = variable(data, "forcing", "precip").mean("time") * DAYS_PER_YEAR_MAP
    for name in ("elevation", "canopy_height", "forest_age"):
        maps[name] = variable(data, name, name)
    for name in SOIL:
        maps[name] = variable(data, "soil", name)
    return maps


def patch_numbers(grid: Grid, patch_deg: tuple[float, float]) -> np.ndarray:
    """Global patch number of every grid cell, (lat, lon)."""
    dlat, dlon = patch_deg
    rows = np.floor((np.asarray(grid.lat) + 90.0) / dlat).astype(int)
    cols = np.floor((np.asarray(grid.lon) + 180.0) / dlon).astype(int)
    return rows[:, None] * round(360.0 / dlon) + cols[None, :]


def choose_test_patches(patches: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A fixed share of the patches, at least one, drawn with the study seed."""
    count = max(1, round(fraction * patches.size))
    chosen = np.random.default_rng(seed).choice(patches, size=count, replace=False)
    return np.sort(chosen)


def valid_cells(
    land: np.ndarray, patch: np.ndarray, options: DriverOptions, grid: Grid
) -> np.ndarray:
    """Land cells of patches with enough land; (lat, lon) bool."""
    full = round(options.patch_deg[0] / (grid.lat[1] - grid.lat[0])) * round(
        options.patch_deg[1] / (grid.lon[1] - grid.lon[0])
    )
    ids, counts = np.unique(patch[land], return_counts=True)
    kept = ids[counts >= math.ceil(options.min_patch_fraction * full)]
    return land & np.isin(patch, kept)


def check_finite(values: Mapping[str, np.ndarray], what: str) -> None:
    for name, v in values.items():
        bad = int(np.sum(~np.isfinite(v)))
        if bad:
            raise DriverError(
                f"{what} '{name}' is NaN or infinite in {bad} of {v.shape[-1]} valid cells"
            )


def site_series(sites: xr.Dataset, grid: Grid, cell_index: np.ndarray) -> dict[str, np.ndarray]:
    """Eddy-covariance series on the cells that hold a site, (cell, time); NaN elsewhere."""
    n_cells = int(cell_index.max()) + 1
    out = {name: np.full((n_cells, sites.sizes["time"]), np.nan) for name in SITE_TARGETS}
    rows = np.searchsorted(grid.lat_edges, sites["lat"].values) - 1
    cols = np.searchsorted(grid.lon_edges, sites["lon"].values) - 1
    for i, (r, c) in enumerate(zip(rows, cols)):
        inside = 0 <= r < len(grid.lat) and 0 <= c < len(grid.lon)
        if not inside or cell_index[r, c] < 0:
            logger.warning(
                "site %d at (%.3f, %.3f) is outside the driver's cells",
                i,
                sites.lat[i],
                sites.lon[i],
            )
            continue
        for name, source in SITE_TARGETS.items():
            out[name][cell_index[r, c]] = sites[source].values[i]
    return out


@dataclass(frozen=True)
class CellData:
    """What a driver holds, on its valid cells (cells in row-major order of ``valid``).

    ``targets`` holds every name of TARGETS: fine and coarse ones per cell
    (cell, time; coarse ones are averaged per patch here), static ones (cell,).
    ``units`` names the unit of every predictor, target and site series.
    """

    valid: np.ndarray  # (lat, lon) bool
    cell_patch: np.ndarray  # (cell,) global patch number
    test_patches: np.ndarray  # patch numbers of the fixed test set
    predictors: Mapping[str, np.ndarray]  # PREDICTORS, (cell,)
    forcing: Mapping[str, np.ndarray]  # FORCING, (cell, time), units of _FORCING_UNITS
    co2: np.ndarray  # (time,) ppm
    targets: Mapping[str, np.ndarray]
    sites: Mapping[str, np.ndarray]  # SITE_TARGETS, (cell, time)
    site_weight: np.ndarray  # (cell,) representativeness weight of the cell's site, 0 without one
    units: Mapping[str, str]


def assemble(
    data: Mapping[str, xr.Dataset],
    co2: pd.DataFrame,
    sites: xr.Dataset,
    grid: Grid,
    options: DriverOptions,
    period: Mapping[str, int],
    seed: int,
) -> xr.Dataset:
    """The driver dataset of one grid from regridded products (see the module docstring)."""
    for name, ds in data.items():
        check_grid(name, ds, grid)
    calendar = monthly_calendar(period["first_year"], period["last_year"])
    for name in ("forcing", "lai", "sif", "et", "nbe", "ewt"):
        check_months(name, data[name], calendar)
    check_months("biomass", data["biomass"], calendar, annual=True)
    check_months("sites", sites, calendar)
    share = options.max_infinite_share
    data = {n: validate.check_product(ds, n, source_of(ds, n), share) for n, ds in data.items()}
    sites = validate.check_product(sites, "sites", source_of(sites, "sites"), share)

    maps = predictor_maps(data)
    land = variable(data, "landcover", "land_fraction").fillna(0.0).values >= options.land_threshold
    patch = patch_numbers(grid, options.patch_deg)
    valid = valid_cells(land, patch, options, grid)
    if not valid.any():
        raise DriverError(
            "no valid land cells: check region, land_threshold and min_patch_fraction"
        )
    ys, xs = np.nonzero(valid)
    cell_index = np.full(valid.shape, -1)
    cell_index[ys, xs] = np.arange(ys.size)

    def cells(field: xr.DataArray) -> np.ndarray:
        return np.asarray(field.transpose(..., "lat", "lon").values)[..., ys, xs]

    predictors = {name: cells(m) for name, m in maps.items()}
    forcing = {name: cells(variable(data, "forcing", name)).T for name in FORCING}
    cell_patch = patch[ys, xs]
    test_patches = choose_test_patches(np.unique(cell_patch), options.test_fraction, seed)
    check_enough_patches(np.unique(cell_patch).size, test_patches.size)
    targets = {
        t: cells(variable(data, d, v)).T
        for t, (d, v) in (FINE_TARGETS | COARSE_TARGETS).items()
        if d != "biomass"
    }
    annual = cells(variable(data, "biomass", "biomass")).T  # (cell, year)
    targets["biomass"] = annual[:, calendar.year.to_numpy() - period["first_year"]]
    targets |= {t: cells(variable(data, d, v)) for t, (d, v) in STATIC_TARGETS.items()}
    ec = site_series(sites, grid, cell_index)
    units = {p: str(m.attrs.get("units", "1")) for p, m in maps.items()} | {
        "MAT": "degC",
        "MAP": "mm yr-1",
    }
    units |= {t: str(variable(data, d, v).attrs.get("units", "")) for t, (d, v) in TARGETS.items()}
    units |= {t: str(sites[s].attrs.get("units", "")) for t, s in SITE_TARGETS.items()}
    fields = CellData(
        valid=valid,
        cell_patch=cell_patch,
        test_patches=test_patches,
        predictors=predictors,
        forcing=forcing,
        co2=co2_series(co2, calendar),
        targets=targets,
        sites=ec,
        site_weight=np.isfinite(ec["gpp_ec"]).any(axis=1).astype(np.float32),
        units=units,
    )
    return driver_dataset(fields, grid, calendar, options, seed)


def check_enough_patches(n_patches: int, n_test: int) -> None:
    """A member needs two patches beside the test set: one to train on, one for development."""
    if n_patches - n_test < 2:
        raise DriverError(
            f"{n_patches} patches have enough land cells and {n_test} of them are test patches; "
            "a member needs 2 more (one to train on, one for development): enlarge the region "
            "or lower driver.patch_deg, driver.min_patch_fraction or driver.land_threshold"
        )


def co2_series(co2: pd.DataFrame, calendar: pd.DataFrame) -> np.ndarray:
    """The ``co2_ppm`` column of a (year, month) table on the study months."""
    series = calendar.merge(co2, on=["year", "month"], how="left")["co2_ppm"].to_numpy()
    if np.isnan(series).any():
        missing = calendar[np.isnan(series)].iloc[0]
        raise DriverError(f"co2 table lacks {int(missing.year)}-{int(missing.month):02d}")
    return series


def driver_dataset(
    fields: CellData, grid: Grid, calendar: pd.DataFrame, options: DriverOptions, seed: int
) -> xr.Dataset:
    """The driver contract, from what it holds on its cells; every source goes through here."""
    predictors, forcing = fields.predictors, fields.forcing
    check_finite(predictors, "predictor")
    check_finite({k: v.T for k, v in forcing.items()}, "forcing variable")
    name = f"being assembled on {grid.name}"
    targets = {
        t: observed(v, t, name, options.max_infinite_share) for t, v in fields.targets.items()
    }
    sites = {t: observed(v, t, name, options.max_infinite_share) for t, v in fields.sites.items()}
    ys, xs = np.nonzero(fields.valid)
    cell_patch = fields.cell_patch
    patch_ids = np.unique(cell_patch)
    test_ids = fields.test_patches
    delta_t = (
        calendar.days_in_month.to_numpy()
        if options.delta_t == "calendar"
        else np.full(len(calendar), 30.0)
    )
    fine = {t: targets[t] for t in FINE_TARGETS}
    coarse = {t: patch_means(targets[t], cell_patch, patch_ids) for t in COARSE_TARGETS}
    static = {t: targets[t] for t in STATIC_TARGETS}
    train = ~np.isin(cell_patch, test_ids)
    units = fields.units
    matrix = np.stack([predictors[p] for p in PREDICTORS], axis=-1)
    dataset = xr.Dataset(
        {
            "lat": (
                "cell",
                np.asarray(grid.lat)[ys],
                {"units": "degrees_north", "standard_name": "latitude"},
            ),
            "lon": (
                "cell",
                np.asarray(grid.lon)[xs],
                {"units": "degrees_east", "standard_name": "longitude"},
            ),
            "cell_y": ("cell", ys.astype(np.int32), {"long_name": "row of the cell on the grid"}),
            "cell_x": (
                "cell",
                xs.astype(np.int32),
                {"long_name": "column of the cell on the grid"},
            ),
            "patch": ("cell", cell_patch.astype(np.int32), {"long_name": "global patch number"}),
            "test": ("cell", ~train, {"long_name": "cell lies in a fixed test patch"}),
            "patch_test": (
                "patch_id",
                np.isin(patch_ids, test_ids),
                {"long_name": "patch is a test patch"},
            ),
            **{
                p: (
                    "cell",
                    predictors[p].astype(np.float32),
                    {"long_name": f"predictor {p}", "units": units[p]},
                )
                for p in PREDICTORS
            },
            "predictor_mean": (
                "predictor",
                matrix[train].mean(axis=0),
                {"long_name": "mean over training cells"},
            ),
            "predictor_std": (
                "predictor",
                matrix[train].std(axis=0),
                {"long_name": "population std over training cells"},
            ),
            **{
                f: (("cell", "time"), forcing[f].astype(np.float32), {"units": _FORCING_UNITS[f]})
                for f in FORCING
            },
            "co2": ("time", fields.co2, {"units": "ppm"}),
            "days": (
                "time",
                calendar.days.to_numpy(),
                {"units": "d", "long_name": "mid-step days since 2000-01-01"},
            ),
            "doy": (
                "time",
                calendar.doy.to_numpy(),
                {"units": "d", "long_name": "mean day of year of the step"},
            ),
            "delta_t": ("time", delta_t, {"units": "d", "long_name": "step length"}),
            "t_mean": (
                "cell",
                predictors["MAT"],
                {"units": "degC", "long_name": "long-term mean air temperature"},
            ),
            "p_mean": (
                "cell",
                predictors["MAP"] / DAYS_PER_YEAR_MAP,
                {"units": "mm d-1", "long_name": "long-term mean precipitation"},
            ),
            **{
                t: (("cell", "time"), v.astype(np.float32), {"units": units[t]})
                for t, v in fine.items()
            },
            **{
                t: (
                    ("patch_id", "time"),
                    v.astype(np.float32),
                    {"units": units[t], "long_name": f"{t}, mean over the patch's cells"},
                )
                for t, v in coarse.items()
            },
            **{t: ("cell", v.astype(np.float32), {"units": units[t]}) for t, v in static.items()},
            **{
                t: (("cell", "time"), v.astype(np.float32), {"units": units[t]})
                for t, v in sites.items()
            },
            "ec_weight": (
                "cell",
                fields.site_weight.astype(np.float32),
                {"long_name": "representativeness weight of the site in the cell"},
            ),
            "land_mask": (("y", "x"), fields.valid, {"long_name": "cell is in the driver"}),
        },
        coords={
            "time": calendar.time.to_numpy(),
            "predictor": list(PREDICTORS),
            "patch_id": patch_ids.astype(np.int32),
            "grid_lat": ("y", np.asarray(grid.lat), {"units": "degrees_north"}),
            "grid_lon": ("x", np.asarray(grid.lon), {"units": "degrees_east"}),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": "hybridland model driver",
            "grid": grid.name,
            "patch_deg": list(options.patch_deg),
            "seed": seed,
            "max_infinite_share": options.max_infinite_share,
        },
    )
    return validate.check_driver(dataset, name)


def observed(values: np.ndarray, name: str, where: str, max_share: float) -> np.ndarray:
    """An observation on the driver cells with infinite values as gaps (see validate)."""
    data = xr.DataArray(values, dims=("cell", "time")[: np.ndim(values)])
    return np.asarray(validate.infinite_observations(data, name, where, max_share).values)


_FORCING_UNITS = {
    "t_min": "degC",
    "t_max": "degC",
    "rad": "MJ m-2 d-1",
    "vpd": "hPa",
    "precip": "mm d-1",
    "burned_area": "1",
}


def patch_means(values: np.ndarray, cell_patch: np.ndarray, patch_ids: np.ndarray) -> np.ndarray:
    """Mean over each patch's cells of a (cell, time) field; NaN where none is valid."""
    out = np.full((patch_ids.size, values.shape[1]), np.nan)
    for i, pid in enumerate(patch_ids):
        block = values[cell_patch == pid]
        counts = np.isfinite(block).sum(axis=0)
        out[i] = np.where(counts > 0, np.nansum(block, axis=0) / np.maximum(counts, 1), np.nan)
    return out


def parameters_at_cells(
    maps: xr.Dataset, driver: xr.Dataset, source: Path | str
) -> dict[str, np.ndarray]:
    """The 40 parameter maps (lat, lon) of ``maps`` on the driver's grid sampled at its cells,
    (cell,) each; ``source`` names the maps in errors."""
    for axis, grid_axis in (("lat", "grid_lat"), ("lon", "grid_lon")):
        if axis not in maps.coords or not np.allclose(
            maps[axis].values, driver[grid_axis].values, atol=1e-6
        ):
            raise ValueError(f"{source}: coordinate '{axis}' does not match the driver's grid")
    missing = [n for n in parameters.NAMES if n not in maps]
    if missing:
        raise ValueError(f"{source}: lacks parameters {missing}")
    y, x = driver.cell_y.values, driver.cell_x.values
    return {
        n: maps[n].transpose("lat", "lon").values[y, x].astype(np.float64) for n in parameters.NAMES
    }


# Rewrites an assembled driver from the regridded products (e.g. its observations).
Transform = Callable[[xr.Dataset, Mapping[str, xr.Dataset]], xr.Dataset]


def assemble_driver_file(
    regridded: Sequence[str | Path],
    co2: str | Path,
    sites: str | Path,
    destination: str | Path,
    grid: Grid,
    options: DriverOptions,
    period: Mapping[str, int],
    seed: int,
    transform: Transform | None = None,
) -> None:
    """Read the regridded products (named by file stem), assemble, apply ``transform`` if
    given, write atomically."""
    data = {Path(p).stem: open_netcdf(p) for p in regridded}
    table = pd.read_csv(co2)
    driver = assemble(data, table, open_netcdf(sites), grid, options, period, seed)
    if transform is not None:
        driver = transform(driver, data)
    logger.info(
        "driver %s: %d cells in %d patches (%d test), %d months",
        grid.name,
        driver.sizes["cell"],
        driver.sizes["patch_id"],
        int(driver.patch_test.sum()),
        driver.sizes["time"],
    )
    write_netcdf(driver, destination)


def open_driver(path: str | Path) -> xr.Dataset:
    """A driver file, loaded and checked (every reader goes through here, every time).

    A damaged file, a missing variable, a NaN in forcing or predictors, a value outside
    its physical range or too many infinite observations raise DriverError or
    UnreadableFileError naming the file and the variable.
    """
    return validate.check_driver(open_netcdf(path), str(path))
