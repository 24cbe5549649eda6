"""Units of the DALEC993 forcing (spec 3.1) and the conversions accepted into them.

Pure NumPy, so the data layer reads forcing units without importing JAX.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CANONICAL_UNITS = {
    "days": "d",
    "t_min": "degC",
    "t_max": "degC",
    "rad": "MJ m-2 d-1",
    "co2": "ppm",
    "doy": "d",
    "burned_area": "1",
    "vpd": "hPa",
    "precip": "mm d-1",
    "delta_t": "d",
    "lat": "degrees_north",
    "t_mean": "degC",
    "p_mean": "mm d-1",
}

_Convert = Callable[[np.ndarray], np.ndarray]
# Accepted units per canonical unit, with the conversion to it.
_CONVERSIONS: dict[str, dict[str, _Convert]] = {
    "degC": {"degC": lambda x: x, "C": lambda x: x, "K": lambda x: x - 273.15},
    "hPa": {"hPa": lambda x: x, "kPa": lambda x: x * 10.0, "Pa": lambda x: x / 100.0},
    "mm d-1": {
        "mm d-1": lambda x: x,
        "mm/day": lambda x: x,
        "mm day-1": lambda x: x,
        "kg m-2 s-1": lambda x: x * 86400.0,
        "mm s-1": lambda x: x * 86400.0,
    },
    "MJ m-2 d-1": {
        "MJ m-2 d-1": lambda x: x,
        "MJ m-2 day-1": lambda x: x,
        "W m-2": lambda x: x * 0.0864,
        "J m-2 d-1": lambda x: x * 1e-6,
    },
    "ppm": {"ppm": lambda x: x, "umol mol-1": lambda x: x, "1e-6": lambda x: x},
    "1": {"1": lambda x: x, "": lambda x: x, "fraction": lambda x: x, "%": lambda x: x / 100.0},
    "d": {"d": lambda x: x, "day": lambda x: x, "days": lambda x: x},
    "degrees_north": {
        "degrees_north": lambda x: x,
        "degree_north": lambda x: x,
        "degrees": lambda x: x,
    },
}


class InputError(ValueError):
    """Bad parameters or forcing, found before any computation."""


def to_canonical_units(name: str, values: np.ndarray, units: str | None) -> np.ndarray:
    """Convert one forcing variable to the unit of spec 3.1; no ``units`` means canonical."""
    target = CANONICAL_UNITS[name]
    if units is None:
        return values
    table = _CONVERSIONS[target]
    if units not in table:
        raise InputError(
            f"forcing variable '{name}' has units '{units}'; expected '{target}' "
            f"or one of {sorted(table)}"
        )
    return table[units](values)
