"""The grid-truth twin: a driver's observations made by DALEC on its own cells from the truth."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr
from drivers import tiny_driver, truth_parameters

from hybridland.data import driver as driver_module
from hybridland.data.twin import grid_truth
from hybridland.data.twin.config import DEFAULT_NOISE

NO_NOISE = {name: {"relative": 0.0, "absolute": 0.0} for name in DEFAULT_NOISE}


def on_grid(driver: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset]:
    """``driver`` with grid coordinates, and the truth behind its observations as (lat, lon)
    maps on that grid (cells sit at cell_y, cell_x; the other grid points hold cell 0's)."""
    ny, nx = driver.sizes["y"], driver.sizes["x"]
    driver = driver.assign_coords(
        grid_lat=("y", 30.0 + np.arange(ny)), grid_lon=("x", -110.0 + np.arange(nx))
    )
    y, x = driver.cell_y.values, driver.cell_x.values
    maps = {}
    for name, values in truth_parameters(driver).items():
        grid = np.full((ny, nx), float(np.asarray(values)[0]))
        grid[y, x] = np.asarray(values)
        maps[name] = (("lat", "lon"), grid)
    truth = xr.Dataset(maps, coords={"lat": driver.grid_lat.values, "lon": driver.grid_lon.values})
    return driver, truth


def test_without_noise_the_observations_are_the_truth_run_on_the_cells_with_their_gaps():
    made, truth = on_grid(tiny_driver())  # its observations: DALEC on the truth, no noise
    wrong = made.copy()
    for name in ("lai", "sif", "et", "nbe", "som"):
        wrong[name] = 3.0 * made[name] + 1.0
    wrong["lai"][0, :5] = np.nan  # gaps of the products stay gaps
    redone = grid_truth.observed_on_grid(wrong, {"truth_parameters": truth}, noise=NO_NOISE, seed=1)
    assert grid_truth.observed_targets(made) == ["sif", "lai", "et", "som", "nbe"]
    for name in ("sif", "et", "nbe", "som"):  # nbe: the mean of each patch's cells
        np.testing.assert_allclose(redone[name], made[name], rtol=2e-4, atol=2e-5)
    lai = redone.lai.values
    assert np.isnan(lai[0, :5]).all() and np.isfinite(lai[0, 5:]).all()
    np.testing.assert_allclose(lai[:, 5:], made.lai.values[:, 5:], rtol=2e-4, atol=2e-5)
    assert "grid_truth" in redone.attrs["observations"]


def test_the_noise_is_the_twins_and_seeded():
    made, truth = on_grid(tiny_driver())
    data = {"truth_parameters": truth}
    first = grid_truth.observed_on_grid(made, data, noise={}, seed=1)
    again = grid_truth.observed_on_grid(made, data, noise={}, seed=1)
    other = grid_truth.observed_on_grid(made, data, noise={}, seed=2)
    np.testing.assert_array_equal(first.lai, again.lai)
    assert not np.allclose(first.lai, other.lai)
    # LAI: relative 0.10 and absolute 0.10 noise (the twin's defaults) about the clean values
    gap = (first.lai - made.lai).values
    assert 0.05 < np.std(gap) < 0.5 and abs(np.mean(gap)) < 0.05
    quieter = grid_truth.observed_on_grid(
        made, data, noise={"lai": {"relative": 0.0, "absolute": 0.01}}, seed=1
    )
    assert np.std((quieter.lai - made.lai).values) < 0.02
    assert (first.lai.values >= 0).all()  # LAI stays non-negative; SIF and NBE may not


def test_without_the_truth_it_names_what_is_missing():
    made, _ = on_grid(tiny_driver())
    message = "driver.observations: grid_truth needs the twin's truth_parameters product"
    with pytest.raises(ValueError, match=re.escape(message)):
        grid_truth.observed_on_grid(made, {}, noise={}, seed=1)


def test_an_unknown_observation_source_is_refused():
    options = {
        "patch_deg": (1.0, 1.0),
        "min_patch_fraction": 0.25,
        "land_threshold": 0.5,
        "test_fraction": 0.1,
        "delta_t": "calendar",
    }
    with pytest.raises(
        driver_module.DriverError,
        match=re.escape("driver.observations: 'truth' is not one of ['products', 'grid_truth']"),
    ):
        driver_module.DriverOptions(**options, observations="truth")
