"""Building the whole twin in memory, and writing its raw products."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import xarray as xr

from hybridland.data.twin.config import TwinConfig
from hybridland.data.twin.files import (
    FILENAMES,
    co2_table,
    forcing_dataset,
    geotiff_array,
    landcover_dataset,
    observation_dataset,
    sites_dataset,
    soil_dataset,
    truth_outputs_dataset,
    truth_parameters_dataset,
    truth_predictors_dataset,
    write_product,
)
from hybridland.data.twin.landscape import Landscape, build_landscape
from hybridland.data.twin.observe import Observation, Sites, observe_gridded, observe_sites
from hybridland.data.twin.truth import Truth, check_truth, simulate_truth
from hybridland.data.twin.weather import Calendar, Forcing, build_forcing, twin_calendar

logger = logging.getLogger(__name__)

_TRUTH_OUTPUTS_LIMIT = 200e6  # bytes


class Twin(NamedTuple):
    """Everything :func:`synthesize` computes before writing."""

    config: TwinConfig
    calendar: Calendar
    landscape: Landscape
    forcing: Forcing
    truth: Truth
    observations: dict[str, Observation]
    sites: Sites


def build_twin(config: TwinConfig) -> Twin:
    """Compute the whole twin in memory (no I/O)."""
    t0 = time.perf_counter()
    cal = twin_calendar(*config.years)
    land = build_landscape(config)
    logger.info(
        "landscape %s fine px, %s truth cells (%.1f s)",
        land.fine.shape,
        land.truth.shape,
        time.perf_counter() - t0,
    )
    forcing = build_forcing(config, land, cal)
    logger.info("forcing %s (%.1f s)", forcing.t_min.shape, time.perf_counter() - t0)
    truth = simulate_truth(land, forcing, cal, config)
    check_truth(truth)
    logger.info(
        "truth run on %d land cells x %d months (%.1f s)",
        truth.land.sum(),
        cal.days.size,
        time.perf_counter() - t0,
    )
    obs = observe_gridded(truth, land, cal, config)
    sites = observe_sites(truth, config)
    return Twin(config, cal, land, forcing, truth, obs, sites)


def twin_datasets(twin: Twin) -> dict[str, xr.Dataset | xr.DataArray | pd.DataFrame]:
    """Every product of the twin, keyed like FILENAMES (pure)."""
    c, cal, land, truth = twin.config, twin.calendar, twin.landscape, twin.truth
    out: dict[str, xr.Dataset | xr.DataArray | pd.DataFrame] = {
        "landcover": landcover_dataset(land, c),
        "soil": soil_dataset(land, c),
        "elevation": geotiff_array(land.elevation, land.fine, "m", "surface elevation"),
        "canopy_height": geotiff_array(land.canopy_height, land.fine, "m", "forest canopy height"),
        "forest_age": geotiff_array(land.forest_age, land.fine, "yr", "forest stand age"),
        "forcing": forcing_dataset(twin.forcing, land, cal, c),
        "co2": co2_table(cal),
        **{k: observation_dataset(k, o, cal, c, land) for k, o in twin.observations.items()},
        "ec_sites": sites_dataset(twin.sites, truth, land, cal, c),
        "truth_parameters": truth_parameters_dataset(truth, land, c),
        "truth_predictors": truth_predictors_dataset(truth, land, c),
    }
    size = 4 * 4 * cal.days.size * truth.land.size
    if c.write_truth_outputs and size <= _TRUTH_OUTPUTS_LIMIT:
        out["truth_outputs"] = truth_outputs_dataset(truth, land, cal, c)
    elif c.write_truth_outputs:
        logger.warning(
            "truth_outputs skipped: %.0f MB exceeds %.0f MB", size / 1e6, _TRUTH_OUTPUTS_LIMIT / 1e6
        )
    return out


def synthesize(config: TwinConfig, out_dir: Path) -> dict[str, Path]:
    """Build the twin region and write its raw products under ``out_dir``.

    Returns:
        Dataset name -> written path (names and file names as in FILENAMES;
        'truth_outputs' only when written).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    datasets = twin_datasets(build_twin(config))
    written: dict[str, Path] = {}
    for name, obj in datasets.items():
        path = out_dir / FILENAMES[name]
        write_product(obj, path)
        written[name] = path
    logger.info(
        "twin written to %s: %d files (%.1f s)", out_dir, len(written), time.perf_counter() - t0
    )
    return written
