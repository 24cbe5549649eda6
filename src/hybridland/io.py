"""Reading and writing files safely: outputs atomically (a temporary file beside the
destination, then a rename), netCDF inputs through one opener whose errors name the file;
CF grid coordinates."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

logger = logging.getLogger(__name__)
_RANDOM_CHARS = 8  # length of the random part of tempfile.mkstemp's names


class UnreadableFileError(OSError):
    """An input file that cannot be read; the message names the file and what to do."""


def open_netcdf(path: Path | str) -> xr.Dataset:
    """The whole netCDF file at ``path``, loaded into memory (CF fill values become NaN).

    A missing, empty, truncated or corrupt file raises UnreadableFileError in one
    sentence naming the file, instead of the netCDF library's bare error.
    """
    path = Path(path)
    if not path.is_file():
        raise UnreadableFileError(f"file {path} does not exist; check the path or rerun its rule")
    if path.stat().st_size == 0:
        raise UnreadableFileError(f"file {path} is empty (0 bytes); delete it and rerun")
    try:
        with xr.open_dataset(path) as opened:
            dataset = opened.load()
    except (OSError, RuntimeError, ValueError) as error:
        logger.debug("reading %s failed: %s", path, error)
        raise UnreadableFileError(
            f"file {path} is truncated or corrupt; delete it and rerun"
        ) from None
    if not dataset.data_vars:
        raise UnreadableFileError(f"file {path} holds no variables; delete it and rerun")
    return dataset


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


def stale_temporaries(destination: Path) -> list[Path]:
    """Temporary files that :func:`atomic_path` left beside ``destination`` (a killed job's)."""
    pattern = glob.escape(f".{destination.name}.") + "?" * _RANDOM_CHARS + ".tmp"
    return sorted(destination.parent.glob(pattern))


@contextlib.contextmanager
def atomic_path(destination: Path | str) -> Iterator[Path]:
    """A temporary path beside ``destination``, renamed onto it when the block succeeds.

    Temporaries of the same destination left by a job that was killed (no cleanup runs
    on SIGKILL) are deleted first: one output is written by one job at a time.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temporaries(destination):
        logger.info("deleting %s, left by an interrupted write of %s", stale, destination)
        stale.unlink(missing_ok=True)
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
