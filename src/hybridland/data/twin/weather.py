"""The twin's monthly weather on the forcing grid, its calendar and its CO2 record.

Temperature, precipitation, radiation, VPD and burned area follow the climatology
of the landscape plus stochastic anomalies (docs/twin.md, "Forcing").
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import signal

from hybridland.contract import EPOCH
from hybridland.data import driver
from hybridland.data.twin.config import TwinConfig
from hybridland.data.twin.fields import smooth_fields, smoothstep, stream
from hybridland.data.twin.landscape import Landscape

Array = np.ndarray


class Calendar(NamedTuple):
    """Monthly time axis; each (time,)."""

    start: Array  # datetime64[D], first day of month
    end: Array  # datetime64[D], first day of next month
    ndays: Array  # days in month
    days: Array  # d since 2000-01-01 at mid-month
    doy: Array  # day of year at mid-month (1-based)
    year: Array
    month: Array  # 1-12


def twin_calendar(first_year: int, last_year: int) -> Calendar:
    """The study's :func:`~hybridland.data.driver.monthly_calendar` as arrays.

    ``days`` is the middle of the month, start + ndays / 2, half a day after the
    driver's mean over the month's days (start + (ndays - 1) / 2): the truth has
    always run on it, and the twin's numbers must not change.
    """
    table = driver.monthly_calendar(first_year, last_year)
    start = table.time.to_numpy().astype("datetime64[M]").astype("datetime64[D]")
    ndays = table.days_in_month.to_numpy()
    return Calendar(
        start=start,
        end=start + ndays.astype("timedelta64[D]"),
        ndays=ndays,
        days=table.days.to_numpy() + 0.5,
        doy=table.doy.to_numpy(),
        year=table.year.to_numpy(),
        month=table.month.to_numpy(),
    )


def co2_ppm(cal: Calendar) -> Array:
    """The synthetic global CO2 record (ppm): 389 mid-2010, +2.3 ppm/yr, 3 ppm cycle peaking in May.

    The truth runs on these values; ``co2.csv`` holds them rounded to 1e-3 ppm, and the
    driver reads that table back with :func:`hybridland.data.driver.co2_series`.
    """
    epoch = np.datetime64(EPOCH.date(), "D")
    years = (cal.days - (np.datetime64("2010-07-02") - epoch).astype(float)) / 365.25
    return 389.0 + 2.3 * years + 3.0 * np.cos(2.0 * np.pi * (cal.doy - 135.0) / 365.25)


def toa_radiation(lat: Array, doy: Array) -> Array:
    """Daily top-of-atmosphere shortwave (MJ m-2 d-1), FAO-56 eq. 21."""
    phi = np.deg2rad(lat)
    dr = 1.0 + 0.033 * np.cos(2.0 * np.pi * doy / 365.0)
    decl = 0.409 * np.sin(2.0 * np.pi * doy / 365.0 - 1.39)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(decl), -1.0, 1.0))
    return (
        24.0
        * 60.0
        / np.pi
        * 0.082
        * dr
        * (ws * np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.sin(ws))
    )


def saturation_vapour_pressure(t: Array) -> Array:
    """Tetens over water, hPa, for t in degC."""
    return 6.1078 * np.exp(17.27 * t / (t + 237.3))


class Weather(NamedTuple):
    """Stochastic anomalies: regional (time,) series and spatial (time, ny, nx) fields."""

    t_regional: Array  # K
    p_regional: Array  # z-score
    p_annual: Array  # z-score, one per month (constant within a year)
    t_field: Array  # z-score
    p_field: Array  # z-score


def weather(
    rng: np.random.Generator, cal: Calendar, shape: tuple[int, int], cells_per_150km: float
) -> Weather:
    n = cal.days.size
    # AR(1) with lag-one correlation 0.4 and unit variance.
    ar = signal.lfilter([math.sqrt(1.0 - 0.16)], [1.0, -0.4], rng.standard_normal(n))
    years = cal.year - cal.year[0]
    annual_t = rng.standard_normal(years.max() + 1)[years]
    p_annual = rng.standard_normal(years.max() + 1)[years]
    fields = smooth_fields(rng, (2, n, *shape), cells_per_150km)
    return Weather(
        1.2 * ar + 0.4 * annual_t, rng.standard_normal(n), p_annual, fields[0], fields[1]
    )


def summer_weight(doy: Array) -> Array:
    return np.maximum(0.0, np.cos(2.0 * np.pi * (doy - 190.0) / 365.25))


def precip_shape(doy: Array, lat: Array, elevation: Array) -> Array:
    """Relative seasonal precipitation (time, ny, nx): winter maximum and monsoon."""
    d = doy[:, None, None]
    north = np.clip((lat - 35.5) / 7.0, 0.0, 1.0)
    uphill = smoothstep((elevation - 1500.0) / 2000.0)
    winter = (0.15 + 0.35 * north + 0.25 * uphill) * np.cos(2.0 * np.pi * (d - 20.0) / 365.25)
    monsoon = (0.4 + 0.9 * (1.0 - north)) * np.exp(-0.5 * ((d - 215.0) / 28.0) ** 2)
    june_dry = 0.45 * np.exp(-0.5 * ((d - 165.0) / 18.0) ** 2)
    shape = np.clip(1.0 + winter + monsoon - june_dry, 0.15, None)
    return shape / shape.mean(axis=0, keepdims=True)


class Forcing(NamedTuple):
    """Monthly forcing on the forcing grid, each (time, ny, nx)."""

    t_min: Array  # degC
    t_max: Array  # degC
    rad: Array  # MJ m-2 d-1
    vpd: Array  # hPa
    precip: Array  # mm d-1
    burned_area: Array  # fraction burned in the month


def meteorology(
    cal: Calendar,
    lat: Array,
    elevation: Array,
    mat: Array,
    map_: Array,
    w: Weather,
    first_year: int,
) -> Forcing:
    """Temperature, radiation, VPD and precipitation; lat is (ny, 1) or (ny, nx)."""
    d = cal.doy[:, None, None]
    summer = summer_weight(cal.doy)[:, None, None]
    wet = 0.6 * w.p_regional[:, None, None] + 0.8 * w.p_field
    trend = 0.03 * (cal.year - first_year)[:, None, None]
    t_mean = (
        mat
        + 13.0 * np.cos(2.0 * np.pi * (d - 200.0) / 365.25)
        + w.t_regional[:, None, None]
        + 0.5 * w.t_field
        + trend
        - 0.6 * summer * wet
    )
    dryness = np.clip((650.0 - map_) / 450.0, 0.0, 1.0)
    dtr = np.clip(12.0 + 4.0 * dryness + 2.0 * summer - 0.8 * wet, 6.0, 24.0)
    t_min, t_max = t_mean - dtr / 2.0, t_mean + dtr / 2.0
    precip = (
        map_
        / 365.25
        * precip_shape(cal.doy, lat, elevation)
        * np.exp(0.2 * w.p_annual[:, None, None] - 0.02)
        * np.exp(0.5 * wet - 0.125)
    )
    transmissivity = np.clip(0.74 + 0.02 * elevation / 1000.0 - 0.05 * wet, 0.4, 0.85)
    rad = toa_radiation(lat, d) * transmissivity
    depression = np.clip(1.5 + 7.0 * dryness + 3.0 * summer - 1.0 * wet, 0.5, None)
    vpd = 0.5 * (saturation_vapour_pressure(t_max) + saturation_vapour_pressure(t_min))
    vpd = np.maximum(vpd - saturation_vapour_pressure(t_min - depression), 0.1)
    zeros = np.zeros_like(t_min)
    return Forcing(t_min, t_max, rad, vpd, np.maximum(precip, 0.02), zeros)


def fire_hazard(cal: Calendar, w: Weather) -> Array:
    """Relative monthly fire hazard (time,): hot, dry months of May-October."""
    season = np.where(
        (cal.month >= 5) & (cal.month <= 10), np.exp(-0.5 * ((cal.doy - 200.0) / 40.0) ** 2), 0.0
    )
    return season * np.exp(-1.0 * w.p_regional + 0.5 * w.t_regional)


def burned_fraction(
    rng: np.random.Generator, hazard: Array, fuel: Array, rate_per_cell: float = 1.5e-4
) -> Array:
    """Monthly burned fraction (time, ny, nx) from Poisson fire events.

    Each event is centred on a fuel-weighted cell with a Gaussian footprint
    (radius ~1 cell, lognormal) and a peak burned fraction U(0.05, 0.5), scaled by
    the cell's woody fuel fraction; fractions below 0.001 are set to 0.
    """
    ny, nx = fuel.shape
    out = np.zeros((hazard.size, ny, nx))
    counts = rng.poisson(rate_per_cell * ny * nx * hazard)
    p = fuel.ravel() / fuel.sum() if fuel.sum() > 0 else np.full(ny * nx, 1.0 / (ny * nx))
    yy, xx = np.mgrid[0:ny, 0:nx]
    for t in np.flatnonzero(counts):
        for centre in rng.choice(ny * nx, size=counts[t], p=p):
            cy, cx = divmod(int(centre), nx)
            radius = math.exp(rng.normal(0.0, 0.5))
            peak = rng.uniform(0.05, 0.5)
            out[t] += peak * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * radius**2))
    out = np.clip(out * fuel, 0.0, 0.95)
    return np.where(out < 1e-3, 0.0, out)


def build_forcing(config: TwinConfig, land: Landscape, cal: Calendar) -> Forcing:
    grid = land.forcing_grid
    w = weather(stream(config.seed, "weather"), cal, grid.shape, 150.0 / (grid.lat.step * 111.2))
    met = meteorology(
        cal,
        grid.lat.centres[:, None],
        land.elevation_forcing,
        land.mat_clim,
        land.map_clim,
        w,
        config.years[0],
    )
    burned = burned_fraction(stream(config.seed, "fire"), fire_hazard(cal, w), land.fuel)
    return met._replace(burned_area=burned)
