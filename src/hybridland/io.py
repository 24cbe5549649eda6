"""Atomic writers (a temporary file beside the destination, then a rename); CF grid coordinates."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr


def write_netcdf(dataset: xr.Dataset, destination: Path | str) -> None:
    """Write ``dataset`` to a temporary file beside ``destination``, then rename it."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in dataset.variables.items():
        floating = np.issubdtype(var.dtype, np.floating)
        if name in dataset.coords or str(name).endswith("_bounds") or name == "cell_area":
            encoding[str(name)] = {"_FillValue": None}
        elif floating:
            encoding[str(name)] = {
                "_FillValue": np.float32(np.nan) if var.dtype == np.float32 else np.nan,
                "zlib": True,
                "complevel": 4,
            }
    with atomic_path(destination) as temporary:
        dataset.to_netcdf(temporary, format="NETCDF4", encoding=encoding)


@contextlib.contextmanager
def atomic_path(destination: Path | str) -> Iterator[Path]:
    """A temporary path beside ``destination``, renamed onto it when the block succeeds."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent
    )
    os.close(handle)
    os.chmod(temporary, 0o644)
    try:
        yield Path(temporary)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_csv(
    table: pd.DataFrame, destination: Path | str, float_format: str | None = None
) -> None:
    """Write ``table`` without its index as CSV, atomically; floats as ``float_format`` if given."""
    with atomic_path(destination) as temporary:
        table.to_csv(temporary, index=False, float_format=float_format)


def grid_coords(lat: np.ndarray, lon: np.ndarray) -> dict[str, Any]:
    """CF latitude and longitude coordinates of a regular grid from its cell centres."""
    return {
        "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
        "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
    }
