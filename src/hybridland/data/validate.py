"""Checks of the numbers that go into a driver: physical ranges, fill values, non-finite values.

:data:`PHYSICAL_RANGES` is the one table of what a value of each variable may be, in the
driver's units (docs/refusals.md shows it). The bounds are wide, for observations about ten
times what nature gives: they are there to catch fill values (-9999, 1e20, 255), wrong units
and sign errors, not to judge the data. A value
outside them stops the driver's assembly and every later read of the driver, with a
message naming the file, the variable, how many values and where the first one is.

CF ``_FillValue``/``missing_value`` attributes that were not decoded on reading are
honoured: such values are gaps (NaN), not data. Observations may have gaps (NaN);
infinite observations are counted per target and treated as gaps with a warning while
their share stays within ``driver.max_infinite_share``, refused above it. Forcing and
predictors have no gaps on driver cells.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from hybridland.contract import FORCING, PFT, PREDICTOR_GROUPS, PREDICTORS, SITE_TARGETS, TARGETS

logger = logging.getLogger(__name__)

# Default of the config key driver.max_infinite_share.
DEFAULT_MAX_INFINITE_SHARE = 0.001


class DriverError(ValueError):
    """An input that cannot make a driver; the message names the file or variable."""


class Range(NamedTuple):
    low: float
    high: float
    units: str


_FRACTION = Range(0.0, 1.0, "1")
_PERCENT = Range(0.0, 100.0, "%")

# Variable (as named in the driver and in the regridded products) -> its physical range.
PHYSICAL_RANGES: dict[str, Range] = {
    # forcing, per (cell, month)
    "t_min": Range(-90.0, 60.0, "degC"),
    "t_max": Range(-90.0, 60.0, "degC"),
    "rad": Range(0.0, 60.0, "MJ m-2 d-1"),
    "vpd": Range(0.0, 200.0, "hPa"),
    "precip": Range(0.0, 1000.0, "mm d-1"),
    "burned_area": _FRACTION,
    "co2": Range(150.0, 2000.0, "ppm"),
    "delta_t": Range(1.0, 31.0, "d"),
    "t_mean": Range(-70.0, 50.0, "degC"),
    "p_mean": Range(0.0, 100.0, "mm d-1"),
    # predictors, per cell
    **{p: _FRACTION for p in PFT},
    "pft_fraction": _FRACTION,
    "land_fraction": _FRACTION,
    "MAT": Range(-70.0, 50.0, "degC"),
    "MAP": Range(0.0, 36500.0, "mm yr-1"),
    "elevation": Range(-500.0, 9000.0, "m"),
    "canopy_height": Range(0.0, 150.0, "m"),
    "forest_age": Range(0.0, 5000.0, "yr"),
    "BULK_DEN": Range(0.0, 2000.0, "g cm-3 (or cg cm-3, kg m-3)"),
    "SAND": _PERCENT,
    "SILT": _PERCENT,
    "CLAY": _PERCENT,
    "GRAVEL": _PERCENT,
    # observations (noise may take them a little below zero)
    "lai": Range(-1.0, 100.0, "m2 m-2"),
    "sif": Range(-5.0, 50.0, "SIF units"),
    "et": Range(-10.0, 100.0, "mm d-1"),
    "nbe": Range(-100.0, 100.0, "gC m-2 d-1"),
    "ewt": Range(-10000.0, 10000.0, "mm"),
    "ewt_anomaly": Range(-10000.0, 10000.0, "mm"),
    "biomass": Range(-1000.0, 1.0e6, "gC m-2"),
    "som": Range(-1000.0, 1.0e6, "gC m-2"),
    "gpp": Range(-10.0, 200.0, "gC m-2 d-1"),
    "reco": Range(-10.0, 200.0, "gC m-2 d-1"),
    "gpp_ec": Range(-10.0, 200.0, "gC m-2 d-1"),
    "reco_ec": Range(-10.0, 200.0, "gC m-2 d-1"),
    "et_ec": Range(-10.0, 100.0, "mm d-1"),
}
# Float32 storage rounds a bound like 1.0 to 1.0000001: allow that much.
_RELATIVE_SLACK = 1e-5

# What a driver must hold beside predictors, forcing and targets to be trained on.
DRIVER_INPUTS = ("lat", "patch", "patch_id", "patch_test", "co2", "days", "doy", "delta_t")
DRIVER_CLIMATE = ("t_mean", "p_mean")
OBSERVATIONS = (*TARGETS, *SITE_TARGETS)


def where(data: xr.DataArray, index: tuple[int, ...]) -> str:
    """``index`` of ``data`` in words: coordinate values where the dimension has them."""
    parts = []
    for dim, i in zip(data.dims, index):
        if dim in data.coords and data[dim].ndim == 1:
            value = data[dim].values[i]
            if np.issubdtype(np.asarray(value).dtype, np.datetime64):
                text = str(pd.Timestamp(value).date())
            elif isinstance(value, float | np.floating):
                text = f"{float(value):g}"
            else:
                text = str(value)
            parts.append(f"{dim} {text}")
        else:
            parts.append(f"{dim} {i}")
    return ", ".join(parts)


def honour_fill_values(data: xr.DataArray) -> xr.DataArray:
    """``data`` with CF ``_FillValue``/``missing_value`` values (not yet decoded) as NaN."""
    fills = [data.attrs[k] for k in ("_FillValue", "missing_value") if k in data.attrs]
    if not fills or not np.issubdtype(data.dtype, np.number):
        return data
    values = np.asarray(data.values, dtype=np.result_type(data.dtype, np.float32))
    declared = np.isin(values, np.ravel(fills))
    attrs = {k: v for k, v in data.attrs.items() if k not in ("_FillValue", "missing_value")}
    data = data.copy(data=np.where(declared, np.nan, values))
    data.attrs = attrs
    return data


def _floating(data: xr.DataArray) -> np.ndarray:
    """The values as floating point, without a copy when they already are."""
    values = np.asarray(data.values)
    return values if np.issubdtype(values.dtype, np.floating) else values.astype(np.float64)


def check_range(data: xr.DataArray, name: str, what: str, source: str) -> None:
    """Raise DriverError when a finite value of ``data`` leaves the range of ``name``."""
    bounds = PHYSICAL_RANGES.get(name)
    if bounds is None:
        return
    values = _floating(data)
    slack = _RELATIVE_SLACK * max(1.0, abs(bounds.low), abs(bounds.high))
    bad = np.isfinite(values) & ((values < bounds.low - slack) | (values > bounds.high + slack))
    count = int(bad.sum())
    if count:
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DriverError(
            f"{source}: {what} '{name}' has {count} of {values.size} values outside its "
            f"physical range [{bounds.low:g}, {bounds.high:g}] {bounds.units} (first "
            f"{values[first]:g} at {where(data, first)}); a fill value or wrong units? "
            "correct the input and rerun"
        )


def check_finite(data: xr.DataArray, name: str, what: str, source: str) -> None:
    """Raise DriverError when ``data`` holds NaN or an infinite value (no gaps allowed)."""
    values = _floating(data)
    bad = ~np.isfinite(values)
    count = int(bad.sum())
    if count:
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DriverError(
            f"{source}: {what} '{name}' is NaN or infinite in {count} of {values.size} values "
            f"(first {values[first]:g} at {where(data, first)}); it must be complete: "
            "correct the input and rerun"
        )


def infinite_observations(
    data: xr.DataArray, name: str, source: str, max_share: float
) -> xr.DataArray:
    """``data`` with infinite values as gaps (NaN), warned about; refused above ``max_share``."""
    values = _floating(data)
    bad = np.isinf(values)
    count = int(bad.sum())
    if not count:
        return data
    share = count / values.size
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    text = (
        f"{source}: observation '{name}' is infinite in {count} of {values.size} values "
        f"({share:.3%}, first at {where(data, first)})"
    )
    if share > max_share:
        raise DriverError(
            f"{text}, more than driver.max_infinite_share ({max_share:.3%}) allows; "
            "correct the product or raise driver.max_infinite_share"
        )
    logger.warning("%s; they count as gaps", text)
    return data.copy(data=np.where(bad, np.nan, values))


def check_product(dataset: xr.Dataset, product: str, source: str, max_share: float) -> xr.Dataset:
    """A regridded product with fill values as NaN, checked against the physical ranges."""
    checked = {}
    for name, data in dataset.data_vars.items():
        data = honour_fill_values(data)
        if name in OBSERVATIONS or name in ("ewt_anomaly", "gpp", "reco"):
            data = infinite_observations(data, str(name), source, max_share)
        check_range(data, str(name), _kind(str(name), product), source)
        checked[name] = data
    return dataset.assign(checked)


def _kind(name: str, product: str) -> str:
    if name in FORCING:
        return "forcing"
    if name in PREDICTORS or product in ("landcover", "soil"):
        return "predictor"
    return "observation" if name in PHYSICAL_RANGES else "variable"


def check_driver(driver: xr.Dataset, source: str, max_share: float | None = None) -> xr.Dataset:
    """Check a driver before it is used; returns it with infinite observations as gaps.

    Every input must be present and finite, every value within its physical range; the
    predictors are those of the groups the driver's ``predictor_groups`` attribute names
    (default: every group). ``max_share`` defaults to the driver's ``max_infinite_share``
    attribute.
    """
    if max_share is None:
        max_share = float(driver.attrs.get("max_infinite_share", DEFAULT_MAX_INFINITE_SHARE))
    groups = str(driver.attrs.get("predictor_groups", " ".join(PREDICTOR_GROUPS))).split()
    unknown = sorted(set(groups) - set(PREDICTOR_GROUPS))
    if unknown:
        raise DriverError(
            f"driver {source}: attribute predictor_groups names unknown groups {unknown}; "
            f"known: {list(PREDICTOR_GROUPS)}"
        )
    required = {
        "forcing": FORCING,
        "predictor": tuple(p for g in groups for p in PREDICTOR_GROUPS[g]),
        "input": DRIVER_INPUTS + DRIVER_CLIMATE,
    }
    for what, names in required.items():
        for name in names:
            if name not in driver:
                raise DriverError(
                    f"driver {source} lacks {what} variable '{name}'; delete the driver "
                    "and rerun to rebuild it"
                )
    for what, names in required.items():
        for name in names:
            data = honour_fill_values(driver[name])
            if np.issubdtype(data.dtype, np.number):
                check_finite(data, name, what, f"driver {source}")
                check_range(data, name, what, f"driver {source}")
    cleaned = {}
    for name in OBSERVATIONS:
        if name in driver:
            data = infinite_observations(
                honour_fill_values(driver[name]), name, f"driver {source}", max_share
            )
            check_range(data, name, "observation", f"driver {source}")
            cleaned[name] = data
    return driver.assign(cleaned)


def ranges_markdown() -> str:
    """:data:`PHYSICAL_RANGES` as the Markdown table of docs/refusals.md (variables that
    share a range share a row)."""
    rows: dict[Range, list[str]] = {}
    for name, bounds in PHYSICAL_RANGES.items():
        rows.setdefault(bounds, []).append(f"`{name}`")
    lines = ["| variables | lowest | highest | units |", "|---|---|---|---|"]
    lines += [f"| {', '.join(n)} | {r.low:g} | {r.high:g} | {r.units} |" for r, n in rows.items()]
    return "\n".join(lines)
