"""Driver assembly: the contract on a hand-built grid, and errors that name the variable."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hybridland import contract
from hybridland.data import driver
from hybridland.data.grids import Grid

GRID = Grid.regular("0p25deg", 0.25, -108.0, -107.0, 38.0, 39.0, anchor=0.0)  # 4 x 4 cells
OPTIONS = driver.DriverOptions(
    patch_deg=(0.5, 0.5),
    min_patch_fraction=0.25,
    land_threshold=0.5,
    test_fraction=0.25,
    delta_t="calendar",
)
PERIOD = {"first_year": 2010, "last_year": 2011}


def field(values, dims=("lat", "lon"), time=None, units="1") -> xr.DataArray:
    coords = {"lat": list(GRID.lat), "lon": list(GRID.lon)}
    if time is not None:
        coords["time"] = time
    return xr.DataArray(values, dims=dims, coords=coords, attrs={"units": units})


def regridded() -> dict[str, xr.Dataset]:
    rng = np.random.default_rng(0)
    calendar = driver.monthly_calendar(2010, 2011)
    months = pd.DatetimeIndex(calendar.time)
    years = pd.DatetimeIndex(["2010-07-01", "2011-07-01"])
    shape, tshape = (4, 4), (24, 4, 4)
    fractions = rng.dirichlet(np.ones(10), shape).transpose(2, 0, 1)
    land = np.ones(shape)
    land[0, 0] = 0.2  # water cell: dropped
    monthly = lambda v, u: field(v, ("time", "lat", "lon"), months, u)
    return {
        "landcover": xr.Dataset(
            {
                "pft_fraction": xr.DataArray(
                    fractions,
                    dims=("pft", "lat", "lon"),
                    coords={
                        "pft": list(contract.PFT),
                        "lat": list(GRID.lat),
                        "lon": list(GRID.lon),
                    },
                ),
                "land_fraction": field(land),
            }
        ),
        "soil": xr.Dataset(
            {s: field(rng.uniform(10, 40, shape), units="%") for s in contract.SOIL}
        ),
        **{
            n: xr.Dataset({n: field(rng.uniform(1, 30, shape), units="m")})
            for n in ("elevation", "canopy_height", "forest_age")
        },
        "forcing": xr.Dataset(  # burned area is a fraction
            {
                f: monthly(rng.uniform(1, 10, tshape) / (100 if f == "burned_area" else 1), "1")
                for f in contract.FORCING
            }
        ),
        **{
            n: xr.Dataset({n: monthly(rng.uniform(0, 3, tshape), "1")})
            for n in ("lai", "sif", "et", "nbe")
        },
        "ewt": xr.Dataset({"ewt_anomaly": monthly(rng.normal(0, 10, tshape), "mm")}),
        "biomass": xr.Dataset(
            {
                "biomass": field(
                    rng.uniform(100, 900, (2, 4, 4)), ("time", "lat", "lon"), years, "gC m-2"
                )
            }
        ),
        "som": xr.Dataset({"som": field(rng.uniform(1000, 9000, shape), units="gC m-2")}),
    }


def inputs():
    calendar = driver.monthly_calendar(2010, 2011)
    co2 = pd.DataFrame(
        {"year": calendar.year, "month": calendar.month, "co2_ppm": np.linspace(390, 394, 24)}
    )
    sites = xr.Dataset(
        {
            "gpp": (("site", "time"), np.ones((1, 24))),
            "reco": (("site", "time"), np.ones((1, 24))),
            "et": (("site", "time"), np.ones((1, 24))),
        },
        coords={
            "lat": ("site", [38.6]),
            "lon": ("site", [-107.4]),
            "time": pd.DatetimeIndex(calendar.time),
        },
    )
    return co2, sites


def assemble(data):
    co2, sites = inputs()
    return driver.assemble(data, co2, sites, GRID, OPTIONS, PERIOD, seed=1)


def test_driver_contract():
    d = assemble(regridded())
    assert d.sizes["cell"] == 15 and d.sizes["time"] == 24 and d.sizes["patch_id"] == 4
    assert (
        int(d.patch_test.sum()) == 1
        and d.test.sum() == (d.patch == d.patch_id[d.patch_test].item()).sum()
    )
    np.testing.assert_allclose(
        d.MAP, regridded()["forcing"].precip.mean("time").values.ravel()[1:] * 365.22, rtol=1e-6
    )
    assert float(d.delta_t[1]) == 28.0 and float(d.days[0]) == 3653 + 15.0
    np.testing.assert_allclose(
        d.biomass.values[:, 0], d.biomass.values[:, 11]
    )  # annual value in each month
    assert d.ec_weight.sum() == 1 and np.isfinite(d.gpp_ec.values).sum() == 24
    cell = np.flatnonzero(d.patch.values == d.patch_id.values[0])
    np.testing.assert_allclose(
        d.nbe.values[0],
        regridded()["nbe"].nbe.values[:, d.cell_y.values[cell], d.cell_x.values[cell]].mean(axis=1),
        rtol=1e-6,
    )


def test_nan_predictor_names_variable_and_count():
    data = regridded()
    data["soil"]["SAND"][1, 1:3] = np.nan
    with pytest.raises(
        driver.DriverError,
        match=re.escape("predictor 'SAND' is NaN or infinite in 2 of 15 valid cells"),
    ):
        assemble(data)


def test_missing_variable_is_named():
    data = regridded()
    data["soil"] = data["soil"].drop_vars("CLAY")
    with pytest.raises(
        driver.DriverError, match=re.escape("regridded dataset 'soil' lacks variable 'CLAY'")
    ):
        assemble(data)


def test_mismatched_grid_and_time_axis_are_named():
    data = regridded()
    data["lai"] = data["lai"].assign_coords(lat=data["lai"].lat + 0.125)
    with pytest.raises(
        driver.DriverError, match=re.escape("lai: lat does not match the 0p25deg grid of the study")
    ):
        assemble(data)
    data = regridded()
    data["sif"] = data["sif"].isel(time=slice(0, 12))
    with pytest.raises(
        driver.DriverError,
        match=re.escape(
            "sif: time axis (12 steps, (2010, 1) to (2010, 12)) "
            "differs from the study period (24 steps"
        ),
    ):
        assemble(data)
