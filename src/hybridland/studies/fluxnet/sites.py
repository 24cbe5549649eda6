"""Site data of FLUXNET16: the packaged file, its checksums, and the driver built from it."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hybridland import contract
from hybridland.data import download, driver, landcover
from hybridland.io import write_netcdf

logger = logging.getLogger(__name__)

DATA = Path(__file__).parents[2] / "data" / "fluxnet16"
MONTHLY = "fluxnet16_monthly.nc"
GRID = "sites"
SCHEMES = ("leave_cluster_out", "leave_site_out")
CALIBRATION = "per_site_calibration"
CALIBRATION_SETUP = "per_site"
HELDOUT_COLUMNS = ("scheme", "setup", "site", "variable", "nse", "r", "rmse")
MEDIAN_COLUMNS = ("scheme", "setup", "variable", "median_nse", "median_r", "median_rmse", "sites")
# The study's targets: driver target -> variable of the monthly file (uncertainty <variable>_unc).
MONTHLY_TARGETS = {"gpp_ec": "gpp", "reco_ec": "reco", "nbe": "nbe", "et_ec": "et", "lai": "lai"}
FORCING = {"t_min": "t2m_min", "t_max": "t2m_max", "rad": "ssrd", "vpd": "vpd", "precip": "precip"}
# IGBP abbreviations of the site table -> MCD12C1 codes (landcover.IGBP_CLASSES).
IGBP_CODES = {
    "ENF": 1,
    "EBF": 2,
    "DNF": 3,
    "DBF": 4,
    "MF": 5,
    "CSH": 6,
    "OSH": 7,
    "WSA": 8,
    "SAV": 9,
    "GRA": 10,
    "WET": 11,
    "CRO": 12,
    "URB": 13,
    "CVM": 14,
    "SNO": 15,
    "BSV": 16,
}
WEIGHT_RANGE = (0.1, 10.0)  # clip of the relative inverse-variance weights


class FluxnetError(ValueError):
    """Data or configuration that cannot make the study; the message names the file or key."""


# ---- data


def verify_checksums(directory: Path | str = DATA) -> None:
    """Raise FluxnetError unless every file listed in ``SHA256SUMS`` matches its checksum."""
    sums = Path(directory) / "SHA256SUMS"
    try:
        listed = download.parse_checksum_lines(sums.read_text(encoding="utf-8"), where=str(sums))
    except download.DownloadError as error:
        raise FluxnetError(str(error)) from None
    for name, checksum in listed.items():
        algorithm, expected = checksum.split(":")
        digest = hashlib.new(algorithm, (sums.parent / name).read_bytes()).hexdigest()
        if digest != expected:
            raise FluxnetError(
                f"{sums.parent / name}: {algorithm} {digest} differs from SHA256SUMS ({expected})"
            )


def read_monthly(path: Path | str = DATA / MONTHLY) -> xr.Dataset:
    with xr.open_dataset(path) as data:
        return data.load()


def pft_one_hot(igbp: Sequence[str]) -> dict[str, np.ndarray]:
    """The study's 10 PFTs (landcover.PFT_FROM_IGBP) as 0/1 columns from IGBP abbreviations."""
    unknown = sorted(set(igbp) - set(IGBP_CODES))
    if unknown:
        raise FluxnetError(
            f"site table: IGBP classes {unknown} are unknown; known: {sorted(IGBP_CODES)}"
        )
    codes = np.array([IGBP_CODES[c] for c in igbp])
    return {
        pft: np.isin(codes, landcover.PFT_FROM_IGBP[pft]).astype(np.float64) for pft in contract.PFT
    }


def record_months(monthly: xr.Dataset) -> np.ndarray:
    """Index into ``time`` of each site's record months, (site, month); records must be equally
    long."""
    rows = [np.flatnonzero(monthly.split.values[i] > 0) for i in range(monthly.sizes["site"])]
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise FluxnetError(f"{MONTHLY}: site records differ in length ({sorted(lengths)} months)")
    for site, r in zip(monthly.site.values, rows):
        if np.any(np.diff(r) != 1):
            raise FluxnetError(f"{MONTHLY}: the record of {site} is not contiguous")
    return np.stack(rows)


def observed(
    monthly: xr.Dataset, name: str, index: np.ndarray, min_valid_fraction: float
) -> np.ndarray:
    """Monthly means of ``name`` on the records, (site, month); NaN where too few days were
    valid."""
    values = np.take_along_axis(monthly[name].values.astype(np.float64), index, axis=1)
    days = monthly.days_in_month.values[index]
    n_valid = np.take_along_axis(monthly[f"{name}_n_valid"].values, index, axis=1)
    return np.where(n_valid >= np.ceil(min_valid_fraction * days), values, np.nan)


def uncertainty_weight(values: np.ndarray, uncertainty: np.ndarray) -> np.ndarray:
    """Relative inverse-variance weights (median 1 over observed months, clipped); 1 without
    uncertainty."""
    ok = np.isfinite(values) & np.isfinite(uncertainty) & (uncertainty > 0)
    if not ok.any():
        return np.ones_like(values)
    inverse = np.where(ok, 1.0 / np.where(ok, uncertainty, 1.0) ** 2, np.nan)
    weight = np.clip(inverse / np.nanmedian(inverse), *WEIGHT_RANGE)
    return np.where(ok, weight, 1.0)


def site_calendars(monthly: xr.Dataset, index: np.ndarray) -> dict[str, np.ndarray]:
    """Per site and record month: days since 2000-01-01, day of year and days in the month
    (mid-month means)."""
    out = {"days": [], "doy": [], "days_in_month": []}
    for row in index:
        years = pd.DatetimeIndex(monthly.time.values[row]).year
        calendar = driver.monthly_calendar(int(years[0]), int(years[-1]))
        if len(calendar) != len(row):
            raise FluxnetError(
                f"{MONTHLY}: a record of {len(row)} months does not span whole years"
            )
        for key, values in out.items():
            values.append(calendar[key].to_numpy())
    return {k: np.stack(v) for k, v in out.items()}


def assemble(
    monthly: xr.Dataset, min_valid_fraction: float, delta_t: str | int = "calendar"
) -> xr.Dataset:
    """The driver of the 16 sites (see the module docstring)."""
    index = record_months(monthly)
    names = [str(s) for s in monthly.site.values]
    take = lambda name: np.take_along_axis(monthly[name].values.astype(np.float64), index, axis=1)
    forcing = {f: take(v) for f, v in FORCING.items()} | {
        "co2": take("co2"),
        "burned_area": np.zeros(index.shape),
    }
    driver.check_finite({k: v.T for k, v in forcing.items()}, "forcing variable")
    calendar = site_calendars(monthly, index)
    step = (
        calendar["days_in_month"] if delta_t == "calendar" else np.full(index.shape, float(delta_t))
    )
    predictors = pft_one_hot([str(c) for c in monthly.igbp.values])
    predictors |= {
        "MAT": monthly.mean_annual_temp.values,
        "MAP": monthly.mean_annual_precip.values,
        "elevation": monthly.elevation.values,
    }
    columns = contract.PFT + contract.CLIM
    matrix = np.stack([predictors[p] for p in columns], axis=-1)
    targets = {
        t: observed(monthly, v, index, min_valid_fraction) for t, v in MONTHLY_TARGETS.items()
    }
    weights = {
        t: uncertainty_weight(targets[t], take(f"{v}_unc")) for t, v in MONTHLY_TARGETS.items()
    }
    split = np.take_along_axis(monthly.split.values, index, axis=1)
    dates = monthly.time.values[index]
    cell = np.arange(len(names))
    units = {p: "1" for p in contract.PFT} | {"MAT": "degC", "MAP": "mm yr-1", "elevation": "m"}
    return xr.Dataset(
        {
            "lat": (
                "cell",
                monthly.lat.values,
                {"units": "degrees_north", "standard_name": "latitude"},
            ),
            "lon": (
                "cell",
                monthly.lon.values,
                {"units": "degrees_east", "standard_name": "longitude"},
            ),
            "patch": (
                "cell",
                cell.astype(np.int32),
                {"long_name": "patch number (one site per patch)"},
            ),
            "test": (
                "cell",
                np.zeros(len(names), bool),
                {"long_name": "cell lies in a fixed test patch (none: the test split is temporal)"},
            ),
            "patch_test": (
                "patch_id",
                np.zeros(len(names), bool),
                {"long_name": "patch is a test patch"},
            ),
            "test_month": (
                ("cell", "time"),
                split == 2,
                {"long_name": "month is in the site's test years (kept out of training)"},
            ),
            "date": (("cell", "time"), dates, {"long_name": "first day of the month"}),
            **{
                p: (
                    "cell",
                    predictors[p].astype(np.float32),
                    {"long_name": f"predictor {p}", "units": units[p]},
                )
                for p in columns
            },
            "predictor_mean": (
                "predictor",
                matrix.mean(axis=0),
                {"long_name": "mean over the sites"},
            ),
            "predictor_std": (
                "predictor",
                matrix.std(axis=0),
                {"long_name": "population std over the sites"},
            ),
            **{
                f: (("cell", "time"), v.astype(np.float32), {"units": u})
                for (f, v), u in zip(
                    forcing.items(), ("degC", "degC", "MJ m-2 d-1", "hPa", "mm d-1", "ppm", "1")
                )
            },
            "days": (
                ("cell", "time"),
                calendar["days"],
                {"units": "d", "long_name": "mid-step days since 2000-01-01"},
            ),
            "doy": (
                ("cell", "time"),
                calendar["doy"],
                {"units": "d", "long_name": "mean day of year of the step"},
            ),
            "delta_t": (("cell", "time"), step, {"units": "d", "long_name": "step length"}),
            "t_mean": (
                "cell",
                monthly.mean_annual_temp.values,
                {"units": "degC", "long_name": "long-term mean air temperature (site table)"},
            ),
            "p_mean": (
                "cell",
                monthly.mean_annual_precip.values / contract.DAYS_PER_YEAR_MAP,
                {"units": "mm d-1", "long_name": "long-term mean precipitation (site table)"},
            ),
            **{
                t: (
                    ("cell", "time"),
                    v.astype(np.float32),
                    {"units": monthly[MONTHLY_TARGETS[t]].attrs.get("units", "")},
                )
                for t, v in targets.items()
                if t != "nbe"
            },
            "nbe": (
                ("patch_id", "time"),
                targets["nbe"].astype(np.float32),
                {
                    "units": monthly.nbe.attrs.get("units", ""),
                    "long_name": "tower NEE of the patch's site",
                },
            ),
            **{
                f"{t}_weight": (
                    ("cell", "time"),
                    w.astype(np.float32),
                    {"long_name": f"relative inverse-variance weight of {t}"},
                )
                for t, w in weights.items()
            },
            "ec_weight": (
                "cell",
                np.ones(len(names), np.float32),
                {"long_name": "representativeness weight of the site in the cell"},
            ),
        },
        coords={
            "cell": cell,
            "time": np.arange(index.shape[1]),
            "site": ("cell", names),
            "cluster": ("cell", [str(c) for c in monthly.cluster.values]),
            "igbp": ("cell", [str(c) for c in monthly.igbp.values]),
            "predictor": list(columns),
            "patch_id": cell.astype(np.int32),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": "hybridland model driver, FLUXNET16 sites",
            "grid": GRID,
            "min_valid_fraction": min_valid_fraction,
            "time_axis": "month of each site's record (0 = its first January)",
            "predictor_groups": "PFT CLIM",  # the site table has no soil, age or height
        },
    )


def assemble_driver_file(
    source: Path | str, destination: Path | str, min_valid_fraction: float, delta_t: str | int
) -> None:
    """Entry point of the fluxnet_driver rule: verify the packaged data, assemble, write
    atomically."""
    verify_checksums(Path(source).parent)
    result = assemble(read_monthly(source), min_valid_fraction, delta_t)
    logger.info(
        "driver %s: %d sites x %d months, %d test months per site",
        GRID,
        result.sizes["cell"],
        result.sizes["time"],
        int(result.test_month[0].sum()),
    )
    write_netcdf(result, destination)


# ---- folds
