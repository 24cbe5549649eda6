"""The published DifferLand global driver bundle (Zenodo record 13984226), read into the driver
contract.

The layout was read from the public training and evaluation scripts of the
published model (github.com/JianingFang/DifferLand_Global: experiments/
calibration.py, evaluate_performance.py, compute_shap.py); only names, dims and
conventions were taken from them:

* ``differland_global_driver_v6.nc``: every field on the global 0.25-degree
  grid, 720 x 1440 cells, latitude DEScending (89.875 to -89.875), dims
  ``(time, lat, lon)`` for monthly fields and ``(lat, lon)`` for static ones;
  276 months from January 2001. Predictors ``NF ... NVG`` (PFT cover in
  percent: the published SHAP script's purity threshold is 80 percent),
  ``MAT`` (degC), ``MAP`` (mm yr-1), ``elevation``, ``canopy_height``,
  ``tree_age_000_filled``, ``BULK_DEN``, ``SAND``, ``SILT``, ``CLAY``,
  ``GRAVEL``; forcing ``T_min``, ``T_max``, ``SOLR``, ``VPD``, ``PREC``,
  ``BURNED_AREA`` (plus ``DAYS``, ``DOY``, ``LAT``, not read: the contract's
  calendar and grid give them); targets ``LCSPP`` (SIF proxy), ``LAI``, ``ET``
  (GLEAM), ``NBE`` (CMS-Flux, per cell), ``LWE_normalized`` (GRACE anomaly),
  ``agb_yan`` + ``bgb_yan`` (biomass), ``initial_som`` (static),
  ``gpp_fluxnet``, ``reco_fluxnet``, ``et_fluxnet`` and ``gpp_fluxnet_weight``.
* ``co2_mm_gl_01_23.csv``: NOAA global monthly CO2, column ``average`` (ppm);
  ``year`` and ``month`` columns when present, otherwise row i is month i from
  January 2001.
* ``era_valid_v6.nc`` / ``era_valid``: (lat, lon) valid-land mask.
* ``run_simulation_idx_v6.nc`` / ``run_simulation_idx``: (run, lat, lon) patch
  label of every cell per published run; NaN outside the patches, negative in
  the fixed test patches. Run 0 gives the patches and the test set; the
  per-run shuffles (the published dev split) are not used: each member draws
  its own dev patches (:func:`hybridland.training.train.dev_patches`).
* ``assimilate_bulk_variable_v6.nc`` / ``assimilate_bulk_variable``: (lat,
  lon) flag; NBE and the GRACE anomaly count only on flagged cells.

Units: a variable's ``units`` attribute is honoured and converted; where a
file carries none, the units above (the model's, spec 3.1) are assumed. The
record's metadata is not known here beyond what the scripts show, so the file
and variable names can be overridden in the study config (``bundle:``).

A 1/8-degree driver takes, per cell, the value of the 0.25-degree bundle cell
that contains it: the 1/8-degree cells nest in the 0.25-degree ones, so this is
exactly what conservative regridding gives, without its cost.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from hybridland import contract
from hybridland.data import driver, sources
from hybridland.data.grids import Grid
from hybridland.io import atomic_path, write_netcdf
from hybridland.model.units import CANONICAL_UNITS, InputError, to_canonical_units

logger = logging.getLogger(__name__)

DATASET = "differland_global"  # the registry entry and the config's `source`
FIRST_YEAR, LAST_YEAR = 2001, 2023  # months the bundle spans
RESOLUTION = 0.25

# Role -> file name in the record.
FILES: dict[str, str] = {
    "driver": "differland_global_driver_v6.nc",
    "co2": "co2_mm_gl_01_23.csv",
    "valid": "era_valid_v6.nc",
    "split": "run_simulation_idx_v6.nc",
    "assimilate": "assimilate_bulk_variable_v6.nc",
}
# Role -> the variable read from that file (the driver file's are in VARIABLES).
MASKS: dict[str, str] = {
    "valid": "era_valid",
    "split": "run_simulation_idx",
    "assimilate": "assimilate_bulk_variable",
}
# Driver variable -> the bundle variables it is made of (summed when several).
VARIABLES: dict[str, tuple[str, ...]] = {
    **{p: (p,) for p in contract.PREDICTORS},
    "forest_age": ("tree_age_000_filled",),
    "t_min": ("T_min",),
    "t_max": ("T_max",),
    "rad": ("SOLR",),
    "vpd": ("VPD",),
    "precip": ("PREC",),
    "burned_area": ("BURNED_AREA",),
    "lai": ("LAI",),
    "sif": ("LCSPP",),
    "et": ("ET",),
    "nbe": ("NBE",),
    "ewt": ("LWE_normalized",),
    "biomass": ("agb_yan", "bgb_yan"),
    "som": ("initial_som",),
    "gpp_ec": ("gpp_fluxnet",),
    "reco_ec": ("reco_fluxnet",),
    "et_ec": ("et_fluxnet",),
    "ec_weight": ("gpp_fluxnet_weight",),
}
STATIC = set(contract.PREDICTORS) | {"som"}
AXES = {"lat": "latitude", "lon": "longitude"}  # names accepted for the grid axes
ASSIMILATION_FLAGGED = ("nbe", "ewt")  # masked outside the assimilate_bulk_variable cells

# Units of the driver contract where it fixes one; others keep the bundle's.
UNITS: dict[str, str] = {
    **{p: "1" for p in contract.PFT},
    "MAT": "degC",
    "MAP": "mm yr-1",
    "lai": "m2 m-2",
    "et": "mm d-1",
    "nbe": "gC m-2 d-1",
    "ewt": "mm",
    "biomass": "gC m-2",
    "som": "gC m-2",
    "gpp_ec": "gC m-2 d-1",
    "reco_ec": "gC m-2 d-1",
    "et_ec": "mm d-1",
    "ec_weight": "1",
}
# The bundle's unit where a file gives none (the published scripts use these).
ASSUMED_UNITS: dict[str, str] = {p: "%" for p in contract.PFT}
# Accepted units per contract unit, with the factor to it (MAT and forcing:
# model.units.to_canonical_units).
FACTORS: dict[str, dict[str, float]] = {
    "1": {"1": 1.0, "": 1.0, "fraction": 1.0, "%": 0.01, "percent": 0.01},
    "mm yr-1": {"mm yr-1": 1.0, "mm/yr": 1.0, "mm year-1": 1.0, "m yr-1": 1000.0},
    "m2 m-2": {"m2 m-2": 1.0, "m2/m2": 1.0, "1": 1.0, "": 1.0},
    "mm d-1": {"mm d-1": 1.0, "mm/day": 1.0, "mm day-1": 1.0, "kg m-2 s-1": 86400.0},
    "mm": {"mm": 1.0, "kg m-2": 1.0, "cm": 10.0, "m": 1000.0},
    "gC m-2": {
        "gC m-2": 1.0,
        "g C m-2": 1.0,
        "gC/m2": 1.0,
        "kgC m-2": 1000.0,
        "MgC ha-1": 100.0,
        "Mg C ha-1": 100.0,
    },
    "gC m-2 d-1": {"gC m-2 d-1": 1.0, "g C m-2 d-1": 1.0, "gC/m2/day": 1.0, "gC m-2 s-1": 86400.0},
}


class BundleError(driver.DriverError):
    """The bundle cannot make a driver; the message names the file, variable or config key."""


@dataclass(frozen=True)
class Layout:
    """File and variable names of the bundle: the published ones unless the config overrides
    them."""

    files: Mapping[str, str] = field(default_factory=lambda: dict(FILES))
    variables: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(VARIABLES))

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any] | None) -> Layout:
        """``{files: {role: name}, variables: {driver name: bundle name or [names]}}``, both
        optional."""
        mapping = mapping or {}
        files, variables = mapping.get("files", {}), mapping.get("variables", {})
        _check_known("bundle.files", files, FILES)
        _check_known("bundle.variables", variables, VARIABLES)
        as_tuple = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in variables.items()}
        return cls({**FILES, **files}, {**VARIABLES, **as_tuple})


def _check_known(key: str, given: Mapping[str, Any], known: Mapping[str, Any]) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise BundleError(
            f"{key} names {unknown}, which the adapter does not know; expected some of "
            f"{sorted(known)}"
        )


# ---------------------------------------------------------------------------- download


def download_bundle(
    folder: Path | str, manifest: Path | str, *, dataset: str = DATASET, **options: Any
) -> list[Path]:
    """Download (or verify) the record's files into ``folder``; list them in ``manifest`` (JSON).

    ``options`` go to :func:`hybridland.data.sources.download_source` (``api_base``,
    ``retries``, ...). Offline, its DownloadError says where to put the files by hand.
    """
    source = sources.load_registry()[dataset]
    paths = sources.download_source(source, folder, **options)
    folder, manifest = Path(folder), Path(manifest)
    listing = {
        "dataset": dataset,
        "zenodo_record": source.zenodo_record,
        "folder": os.path.relpath(folder, manifest.parent),
        "files": sorted(str(Path(p).relative_to(folder)) for p in paths),
    }
    with atomic_path(manifest) as temporary:
        temporary.write_text(json.dumps(listing, indent=1) + "\n", encoding="utf-8")
    logger.info("%s: %d files in %s", dataset, len(paths), folder)
    return [Path(p) for p in paths]


def locate(folder: Path, listed: Sequence[str], layout: Layout) -> dict[str, Path]:
    """Role -> path of each bundle file among the downloaded ones (archives may nest them)."""
    by_name = {Path(p).name: folder / p for p in listed}
    missing = {role: name for role, name in layout.files.items() if name not in by_name}
    if missing:
        raise BundleError(
            f"{folder}: the bundle lacks {sorted(missing.values())}; the adapter expects "
            f"{sorted(layout.files.values())} and found {sorted(by_name)} "
            "(file names: config bundle.files)"
        )
    return {role: by_name[name] for role, name in layout.files.items()}


# ---------------------------------------------------------------------------- reading


def check_variables(data: xr.Dataset, expected: Sequence[str], path: Path) -> None:
    """Every expected variable is in the file, or an error listing what is missing and expected."""
    missing = sorted(set(expected) - set(data.variables))
    if missing:
        raise BundleError(
            f"{path.name} lacks {missing} of the variables the adapter reads: "
            f"{sorted(set(expected))}"
        )


def parent_index(centres: Sequence[float], bundle: np.ndarray, axis: str, path: Path) -> np.ndarray:
    """Index into the bundle's axis of the bundle cell holding each centre (any axis order)."""
    centres = np.asarray(centres, dtype=float)
    order = np.argsort(bundle)
    ascending = bundle[order]
    idx = np.clip(
        np.searchsorted(ascending - RESOLUTION / 2, centres, side="right") - 1,
        0,
        ascending.size - 1,
    )
    outside = np.abs(ascending[idx] - centres) > RESOLUTION / 2 + 1e-9
    if outside.any():
        raise BundleError(
            f"{path.name}: {axis} {centres[outside][0]} of the study grid lies outside the bundle "
            f"({ascending[0]} to {ascending[-1]}); check region"
        )
    return order[idx]


def cells_of(data: xr.Dataset, grid: Grid, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Row and column in ``data`` of the bundle cell holding each grid cell, row-major (lat,
    lon)."""
    for axis in ("lat", "lon"):
        if axis not in data.coords:
            raise BundleError(f"{path.name}: no '{axis}' coordinate (or '{AXES[axis]}')")
    lat = parent_index(grid.lat, np.asarray(data["lat"].values, float), "latitude", path)
    lon = parent_index(grid.lon, np.asarray(data["lon"].values, float), "longitude", path)
    rows, cols = np.meshgrid(lat, lon, indexing="ij")
    return rows.ravel(), cols.ravel()


def open_bundle_file(path: Path) -> xr.Dataset:
    """A bundle netCDF, lazily, with ``lat``/``lon`` whatever the file calls them."""
    data = xr.open_dataset(path)
    return data.rename(
        {v: k for k, v in AXES.items() if v in data.variables and k not in data.variables}
    )


def month_index(data: xr.Dataset, calendar: pd.DataFrame, path: Path) -> np.ndarray:
    """Positions on the bundle's time axis of the study months."""
    n = data.sizes.get("time", 0)
    if n and np.issubdtype(data["time"].dtype, np.datetime64):
        times = pd.DatetimeIndex(data["time"].values)
    else:  # no datetime axis: monthly from January of the bundle's first year
        times = pd.date_range(f"{FIRST_YEAR}-01-01", periods=n, freq="MS")
    position = {(t.year, t.month): i for i, t in enumerate(times)}
    wanted = list(zip(calendar.year, calendar.month))
    if not all(w in position for w in wanted):
        span = f"{times[0]:%Y-%m} to {times[-1]:%Y-%m}" if n else "none"
        raise BundleError(
            f"{path.name}: time axis ({n} months, {span}) does not cover the study period "
            f"{wanted[0][0]}-{wanted[0][1]:02d} to {wanted[-1][0]}-{wanted[-1][1]:02d} "
            "(config period)"
        )
    return np.array([position[w] for w in wanted])


def on_cells(
    var: xr.DataArray, rows: np.ndarray, cols: np.ndarray, months: np.ndarray, path: Path
) -> np.ndarray:
    """A bundle field at the given cells: (cell,) for static fields, (cell, time) for monthly
    ones."""
    dims = set(var.dims)
    if dims == {"lat", "lon"}:
        return np.asarray(var.transpose("lat", "lon").values, np.float32)[rows, cols]
    if dims == {"time", "lat", "lon"}:  # one field in memory at a time: 1.1 GB at 276 months
        values = np.asarray(
            var.isel(time=months).transpose("time", "lat", "lon").values, np.float32
        )
        return values[:, rows, cols].T
    raise BundleError(
        f"{path.name}: variable '{var.name}' has dims {var.dims}; "
        "expected (lat, lon) or (time, lat, lon)"
    )


def flag(var: xr.DataArray, rows: np.ndarray, cols: np.ndarray, path: Path) -> np.ndarray:
    """A (lat, lon) mask or a (run, lat, lon) label field at the cells, run 0; float, NaN kept."""
    if var.ndim == 3:
        var = var.isel({var.dims[0]: 0})
    if set(var.dims) != {"lat", "lon"}:
        raise BundleError(
            f"{path.name}: variable '{var.name}' has dims {var.dims}; "
            "expected (lat, lon) or (run, lat, lon)"
        )
    return np.asarray(var.transpose("lat", "lon").values, dtype=float)[rows, cols]


def convert(name: str, values: np.ndarray, units: str | None, where: str) -> tuple[np.ndarray, str]:
    """Values in the contract's unit, and that unit (the bundle's own where the contract fixes
    none)."""
    units = ASSUMED_UNITS.get(name) if units is None else units
    canonical = {"MAT": "t_mean"}.get(name, name)
    if canonical in CANONICAL_UNITS:
        try:
            return to_canonical_units(canonical, values, units), CANONICAL_UNITS[canonical]
        except InputError as error:
            raise BundleError(f"{where}: {error}") from None
    target = UNITS.get(name)
    if target is None:
        return values, units or ""
    units = target if units is None else units
    if units not in FACTORS[target]:
        raise BundleError(
            f"{where} has units '{units}'; expected '{target}' or one of {sorted(FACTORS[target])}"
        )
    return values * FACTORS[target][units], target


# ---------------------------------------------------------------------------- the driver


def read_co2(path: Path, calendar: pd.DataFrame) -> np.ndarray:
    """The study months of the bundle's CO2 table (ppm)."""
    table = pd.read_csv(path, comment="#")
    if "average" not in table.columns:
        raise BundleError(f"{path.name} lacks column 'average' (ppm); it has {list(table.columns)}")
    if not {"year", "month"} <= set(table.columns):
        months = pd.date_range(f"{FIRST_YEAR}-01-01", periods=len(table), freq="MS")
        table = table.assign(year=months.year, month=months.month)
    return driver.co2_series(table.rename(columns={"average": "co2_ppm"}), calendar)


def test_set(label: np.ndarray, lattice: np.ndarray, path: Path) -> np.ndarray:
    """The fixed test patches: lattice patches whose cells carry a negative label in run 0.

    The bundle's patches must be the lattice's: each label in one lattice patch, one label per
    patch.
    """
    pairs = np.unique(np.stack([label, lattice]), axis=1)
    for row, what, holds in (
        (0, "label", "lies in lattice patches"),
        (1, "lattice patch", "holds labels"),
    ):
        values, counts = np.unique(pairs[row], return_counts=True)
        if (counts > 1).any():
            bad = values[counts > 1][0]
            others = [f"{v:g}" for v in sorted(pairs[1 - row][pairs[row] == bad])]
            raise BundleError(
                f"{path.name}: {what} {bad:g} {holds} {', '.join(others)}: the bundle's patches "
                "are not the driver.patch_deg lattice (the published patches are 4 x 5 degrees)"
            )
    test = label < 0  # one label per patch (checked above), so a patch is all test or none
    return np.unique(lattice[test])


def adapt(
    paths: Mapping[str, Path],
    grid: Grid,
    options: driver.DriverOptions,
    period: Mapping[str, int],
    seed: int,
    layout: Layout = Layout(),
) -> xr.Dataset:
    """The driver of one grid from the bundle's files (role -> path, as :func:`locate` gives)."""
    calendar = driver.monthly_calendar(period["first_year"], period["last_year"])
    opened = {role: open_bundle_file(p) for role, p in paths.items() if role != "co2"}
    try:
        for role, name in MASKS.items():
            check_variables(opened[role], [name], paths[role])
        data, source = opened["driver"], paths["driver"]
        check_variables(data, [v for names in layout.variables.values() for v in names], source)
        months = month_index(data, calendar, source)
        rows, cols = cells_of(data, grid, source)
        masks = {
            r: flag(opened[r][MASKS[r]], *cells_of(opened[r], grid, paths[r]), paths[r])
            for r in MASKS
        }
        region = Reader(data, layout, rows, cols, months, source)
        predictors = {p: region(p) for p in contract.PREDICTORS}
        land = np.nan_to_num(masks["valid"]) > 0
        complete = np.all([np.isfinite(v) for v in predictors.values()], axis=0)
        valid = land & np.isfinite(masks["split"]) & complete
        if not valid.any():
            raise BundleError(f"{paths['split'].name}: no valid cell in the study region")
        logger.info(
            "%d valid cells; %d land cells dropped for a missing predictor",
            valid.sum(),
            (land & ~complete).sum(),
        )
        lattice = driver.patch_numbers(grid, options.patch_deg).ravel()[valid]
        test_patches = test_set(masks["split"][valid], lattice, paths["split"])
        # Monthly fields are read on the valid cells only.
        read = Reader(data, layout, rows[valid], cols[valid], months, source)
        targets = {t: read(t) for t in contract.TARGETS}
        assimilate = np.nan_to_num(masks["assimilate"][valid]) > 0
        for name in ASSIMILATION_FLAGGED:
            targets[name][~assimilate] = np.nan
        weight = np.nan_to_num(read("ec_weight"))
        fields = driver.CellData(
            valid=valid.reshape(len(grid.lat), len(grid.lon)),
            cell_patch=lattice,
            test_patches=test_patches,
            predictors={p: v[valid] for p, v in predictors.items()},
            forcing={f: read(f) for f in contract.FORCING},
            co2=read_co2(paths["co2"], calendar),
            targets=targets,
            sites={s: read(s) for s in contract.SITE_TARGETS},
            site_weight=weight.max(axis=1) if weight.ndim == 2 else weight,
            units=region.units | read.units,
        )
        return driver.driver_dataset(fields, grid, calendar, options, seed)
    finally:
        for ds in opened.values():
            ds.close()


class Reader:
    """Reads one driver variable on the cells (the sum of its bundle parts), converted; keeps its
    unit."""

    def __init__(
        self,
        data: xr.Dataset,
        layout: Layout,
        rows: np.ndarray,
        cols: np.ndarray,
        months: np.ndarray,
        path: Path,
    ) -> None:
        self.data, self.layout, self.path = data, layout, path
        self.rows, self.cols, self.months = rows, cols, months
        self.units: dict[str, str] = {}

    def __call__(self, name: str) -> np.ndarray:
        total, unit = None, ""
        for bundle_name in self.layout.variables[name]:
            var = self.data[bundle_name]
            values = on_cells(var, self.rows, self.cols, self.months, self.path)
            if name in STATIC and values.ndim == 2:  # a static field stored per month
                values = np.nanmean(values, axis=1)
            where = f"{self.path.name}: variable '{bundle_name}' (driver '{name}')"
            values, unit = convert(name, values, var.attrs.get("units"), where)
            total = values if total is None else total + values
        self.units[name] = unit
        return np.asarray(total)


def adapt_bundle_file(
    manifest: Path | str,
    destination: Path | str,
    grid: Grid,
    options: driver.DriverOptions,
    period: Mapping[str, int],
    seed: int,
    layout: Layout = Layout(),
) -> None:
    """Read the downloaded bundle listed in ``manifest``, write the driver of ``grid``
    atomically."""
    manifest = Path(manifest)
    listing = json.loads(manifest.read_text(encoding="utf-8"))
    folder = manifest.parent / listing["folder"]
    result = adapt(locate(folder, listing["files"], layout), grid, options, period, seed, layout)
    logger.info(
        "driver %s from the bundle: %d cells in %d patches (%d test), %d months",
        grid.name,
        result.sizes["cell"],
        result.sizes["patch_id"],
        int(result.patch_test.sum()),
        result.sizes["time"],
    )
    write_netcdf(result, destination)
