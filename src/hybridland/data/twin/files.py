"""The twin's products as datasets in their native formats, and the writers.

netCDF products are CF-style (lat/lon ascending with ``lat_bnds``/``lon_bnds``,
``time`` at mid-month with ``time_bnds``); terrain and forest structure are
EPSG:4326 GeoTIFFs on the fine grid; CO2 is a CSV table. See docs/twin.md, "Files".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from hybridland.contract import PFT, PREDICTORS
from hybridland.data.twin.config import TwinConfig
from hybridland.data.twin.design import drivers, influence
from hybridland.data.twin.grids import PRODUCT_GRIDS, LatLonGrid, box_grid, covered_fraction
from hybridland.data.twin.landscape import IGBP_NAMES, Landscape
from hybridland.data.twin.observe import Observation, Sites
from hybridland.data.twin.truth import Truth
from hybridland.data.twin.weather import Calendar, Forcing, co2_ppm
from hybridland.io import atomic_path
from hybridland.model import parameters

Array = np.ndarray

PREDICTOR_UNITS: dict[str, str] = {
    **{p: "1" for p in PFT},
    "MAT": "degC",
    "MAP": "mm yr-1",
    "elevation": "m",
    "canopy_height": "m",
    "forest_age": "yr",
    "BULK_DEN": "g cm-3",
    "SAND": "%",
    "SILT": "%",
    "CLAY": "%",
    "GRAVEL": "%",
}

FILENAMES: dict[str, str] = {
    "landcover": "landcover_igbp.nc",
    "soil": "soil.nc",
    "elevation": "elevation.tif",
    "canopy_height": "canopy_height.tif",
    "forest_age": "forest_age.tif",
    "forcing": "forcing.nc",
    "co2": "co2.csv",
    "lai": "obs_lai.nc",
    "sif": "obs_sif.nc",
    "et": "obs_et.nc",
    "nbe": "obs_nbe.nc",
    "ewt": "obs_ewt.nc",
    "biomass": "obs_biomass.nc",
    "som": "obs_som.nc",
    "ec_sites": "obs_ec_sites.nc",
    "truth_parameters": "truth_parameters.nc",
    "truth_predictors": "truth_predictors.nc",
    "truth_outputs": "truth_outputs.nc",
}
"""Dataset name -> file name under the output directory."""

TIME_UNITS = "days since 2000-01-01 00:00:00"


def _var(
    dims: tuple[str, ...],
    data: Array,
    units: str,
    long_name: str,
    standard_name: str | None = None,
    **attrs: Any,
) -> xr.Variable:
    a = {"units": units, "long_name": long_name, **attrs}
    if standard_name:
        a["standard_name"] = standard_name
    return xr.Variable(dims, data, a)


def _grid_coords(grid: LatLonGrid) -> dict[str, xr.Variable]:
    """CF lat/lon centres with bounds variables."""
    bounds = lambda e: np.stack([e[:-1], e[1:]], -1)
    return {
        "lat": _var(
            ("lat",),
            grid.lat.centres,
            "degrees_north",
            "latitude",
            "latitude",
            bounds="lat_bnds",
            axis="Y",
        ),
        "lon": _var(
            ("lon",),
            grid.lon.centres,
            "degrees_east",
            "longitude",
            "longitude",
            bounds="lon_bnds",
            axis="X",
        ),
        "lat_bnds": xr.Variable(("lat", "bnds"), bounds(grid.lat.edges)),
        "lon_bnds": xr.Variable(("lon", "bnds"), bounds(grid.lon.edges)),
    }


def time_coords(start: Array, end: Array) -> dict[str, xr.Variable]:
    """CF time at the middle of each interval with bounds."""
    s = start.astype("datetime64[ns]")
    e = end.astype("datetime64[ns]")
    mid = s + (e - s) / 2
    return {
        "time": xr.Variable(
            ("time",), mid, {"standard_name": "time", "bounds": "time_bnds", "axis": "T"}
        ),
        "time_bnds": xr.Variable(("time", "bnds"), np.stack([s, e], -1)),
    }


def _annual(cal: Calendar) -> tuple[Array, Array]:
    return cal.start[::12], cal.end[11::12]


def _attrs(config: TwinConfig, title: str, stands_for: str, **extra: Any) -> dict[str, Any]:
    return {
        "Conventions": "CF-1.8",
        "title": title,
        "source": "hybridland.data.twin synthetic twin region (not real data)",
        "stands_in_for": stands_for,
        "seed": config.seed,
        "box_west_east_south_north": list(config.box),
        **extra,
    }


def _gridded(
    grid: LatLonGrid,
    variables: Mapping[str, xr.Variable],
    attrs: Mapping[str, Any],
    times: tuple[Array, Array] | None = None,
) -> xr.Dataset:
    coords: dict[str, xr.Variable] = dict(_grid_coords(grid))
    if times is not None:
        coords.update(time_coords(*times))
    ds = xr.Dataset(dict(variables), coords=coords, attrs=dict(attrs))
    return ds.set_coords([c for c in ("lat_bnds", "lon_bnds", "time_bnds") if c in ds])


OBS_META: dict[str, tuple[str, str, str | None, str]] = {
    "lai": ("lai", "m2 m-2", "leaf_area_index", "MODIS LAI (monthly, 0.073 deg)"),
    "sif": ("sif", "SIF units", None, "LCSPP SIF proxy (monthly, 0.05 deg)"),
    "et": ("et", "mm d-1", None, "GLEAM v4 actual evaporation (monthly, 0.1 deg)"),
    "nbe": ("nbe", "gC m-2 d-1", None, "CMS-Flux NBE (monthly, GEOS-Chem 4 x 5 deg)"),
    "ewt": ("ewt_anomaly", "mm", None, "GRACE/GRACE-FO JPL mascon LWE anomaly (monthly, 0.5 deg)"),
    "biomass": ("biomass", "gC m-2", None, "Xu et al. live biomass AGB+BGB (annual, 0.1 deg)"),
    "som": ("som", "gC m-2", None, "HWSD soil organic carbon (static, 0.05 deg)"),
}
"""Product -> (variable name, units, CF standard name, what it stands in for)."""


def observation_dataset(
    name: str, obs: Observation, cal: Calendar, config: TwinConfig, land: Landscape
) -> xr.Dataset:
    var, units, standard, stands = OBS_META[name]
    noise = config.noise[name]
    dims: tuple[str, ...] = ("lat", "lon") if obs.values.ndim == 2 else ("time", "lat", "lon")
    times = None if name == "som" else (_annual(cal) if name == "biomass" else (cal.start, cal.end))
    variables = {
        var: _var(
            dims,
            obs.values,
            units,
            f"synthetic {stands}",
            standard,
            noise_relative=noise.relative,
            noise_absolute=noise.absolute,
        )
    }
    if name == "nbe":
        variables["area_fraction_in_box"] = _var(
            ("lat", "lon"),
            covered_fraction(land.truth, obs.grid).astype(np.float32),
            "1",
            "fraction of the cell inside the twin's truth grid (the mean covers that part only)",
        )
    return _gridded(obs.grid, variables, _attrs(config, f"twin observation: {name}", stands), times)


def sites_dataset(
    sites: Sites, truth: Truth, land: Landscape, cal: Calendar, config: TwinConfig
) -> xr.Dataset:
    n = sites.iy.size
    dominant = [
        max(PFT, key=lambda p: truth.predictors[p][y, x]) for y, x in zip(sites.iy, sites.ix)
    ]
    rec = sites.records
    variables = {
        "site_id": xr.Variable(
            ("site",),
            np.array([f"TW-{i + 1:03d}" for i in range(n)], dtype=object),
            {"long_name": "site identifier"},
        ),
        "lat": _var(
            ("site",),
            land.truth.lat.centres[sites.iy],
            "degrees_north",
            "site latitude",
            "latitude",
        ),
        "lon": _var(
            ("site",),
            land.truth.lon.centres[sites.ix],
            "degrees_east",
            "site longitude",
            "longitude",
        ),
        "elevation": _var(
            ("site",),
            truth.predictors["elevation"][sites.iy, sites.ix],
            "m",
            "site elevation",
            "surface_altitude",
        ),
        "dominant_pft": xr.Variable(
            ("site",),
            np.array(dominant, dtype=object),
            {"long_name": "dominant PFT of the site cell"},
        ),
        "gpp": _var(
            ("site", "time"),
            rec["gpp"],
            "gC m-2 d-1",
            "gross primary production",
            "gross_primary_productivity_of_biomass_expressed_as_carbon",
        ),
        "reco": _var(
            ("site", "time"), rec["reco"], "gC m-2 d-1", "ecosystem respiration (gpp + nee)"
        ),
        "et": _var(("site", "time"), rec["et"], "mm d-1", "evapotranspiration"),
    }
    ds = xr.Dataset(
        variables,
        coords=time_coords(cal.start, cal.end),
        attrs=_attrs(
            config,
            "twin observation: eddy-covariance sites",
            "FLUXNET monthly GPP, RECO, ET at point cells",
        ),
    )
    return ds.set_coords(["site_id", "lat", "lon", "time_bnds"])


FORCING_META: dict[str, tuple[str, str, str | None]] = {
    "t_min": ("degC", "mean daily minimum 2 m air temperature", "air_temperature"),
    "t_max": ("degC", "mean daily maximum 2 m air temperature", "air_temperature"),
    "rad": (
        "MJ m-2 d-1",
        "incoming shortwave radiation, daily total",
        "surface_downwelling_shortwave_flux_in_air",
    ),
    "vpd": ("hPa", "vapour pressure deficit", "water_vapor_saturation_deficit_in_air"),
    "precip": ("mm d-1", "precipitation rate", "lwe_precipitation_rate"),
    "burned_area": ("1", "fraction of the cell burned during the month", None),
}


def forcing_dataset(
    forcing: Forcing, land: Landscape, cal: Calendar, config: TwinConfig
) -> xr.Dataset:
    dims = ("time", "lat", "lon")
    variables = {
        k: _var(dims, getattr(forcing, k).astype(np.float32), *FORCING_META[k])
        for k in FORCING_META
    }
    attrs = _attrs(
        config, "twin forcing", "ERA5-Land monthly meteorology and GFED5 burned fraction (0.1 deg)"
    )
    return _gridded(land.forcing_grid, variables, attrs, (cal.start, cal.end))


def landcover_dataset(land: Landscape, config: TwinConfig) -> xr.Dataset:
    grid = box_grid(config.box, PRODUCT_GRIDS["landcover"])
    majority = np.argmax(land.class_fraction, axis=0).astype(np.uint8)
    percent = np.round(land.class_fraction * 100.0).astype(np.uint8)
    flags = {"flag_values": np.arange(17, dtype=np.uint8), "flag_meanings": " ".join(IGBP_NAMES)}
    variables = {
        "igbp_class": _var(
            ("lat", "lon"), majority, "1", "majority IGBP land cover class (type 1)", **flags
        ),
        "igbp_percent": _var(
            ("class", "lat", "lon"), percent, "%", "percent of the cell covered by each IGBP class"
        ),
    }
    ds = _gridded(
        grid,
        variables,
        _attrs(config, "twin land cover", "MODIS MCD12C1 IGBP land cover (0.05 deg)"),
    )
    return ds.assign_coords(
        {"class": ("class", np.arange(17, dtype=np.uint8), {"long_name": "IGBP class"})}
    )


SOIL_META: dict[str, tuple[str, str]] = {
    "BULK_DEN": ("g cm-3", "topsoil bulk density"),
    "SAND": ("%", "topsoil sand fraction (by weight)"),
    "SILT": ("%", "topsoil silt fraction (by weight)"),
    "CLAY": ("%", "topsoil clay fraction (by weight)"),
    "GRAVEL": ("%", "topsoil gravel content (by volume)"),
}


def soil_dataset(land: Landscape, config: TwinConfig) -> xr.Dataset:
    grid = box_grid(config.box, PRODUCT_GRIDS["soil"])
    water = land.class_fraction[0] >= 0.5
    variables = {
        k: _var(("lat", "lon"), np.where(water, np.nan, v).astype(np.float32), *SOIL_META[k])
        for k, v in land.soil.items()
    }
    return _gridded(
        grid, variables, _attrs(config, "twin soil", "HWSD-like topsoil texture (0.05 deg)")
    )


def truth_parameters_dataset(truth: Truth, land: Landscape, config: TwinConfig) -> xr.Dataset:
    """The TRUE parameter maps; each variable's ``drivers`` attribute names its groups."""
    overrides = config.truth_overrides
    driven_by = drivers(overrides)
    variables = {
        n: _var(
            ("lat", "lon"),
            truth.parameters[n].astype(np.float32),
            parameters.BY_NAME[n].units,
            parameters.BY_NAME[n].long_name,
            drivers=" ".join(driven_by[n]),
        )
        for n in parameters.NAMES
    }
    by_group = influence(overrides)
    extra = {"influence": "; ".join(f"{g}: {' '.join(p) or 'none'}" for g, p in by_group.items())}
    return _gridded(
        land.truth,
        variables,
        _attrs(config, "twin truth: DALEC993 parameters", "none (truth)", **extra),
    )


def truth_drivers(path: Path | str) -> dict[str, tuple[str, ...]]:
    """Parameter -> predictor groups that drive it, as recorded in ``truth_parameters.nc``."""
    with xr.open_dataset(path, decode_times=False) as ds:
        return {n: tuple(ds[n].attrs["drivers"].split()) for n in parameters.NAMES}


def truth_predictors_dataset(truth: Truth, land: Landscape, config: TwinConfig) -> xr.Dataset:
    variables = {
        c: _var(("lat", "lon"), truth.predictors[c].astype(np.float32), PREDICTOR_UNITS[c], c)
        for c in PREDICTORS
    }
    variables["land_mask"] = _var(
        ("lat", "lon"), truth.land.astype(np.uint8), "1", "cells simulated (water fraction < 0.5)"
    )
    return _gridded(land.truth, variables, _attrs(config, "twin truth: predictors", "none (truth)"))


def truth_outputs_dataset(
    truth: Truth, land: Landscape, cal: Calendar, config: TwinConfig
) -> xr.Dataset:
    dims = ("time", "lat", "lon")
    pick = {
        "lai": ("lai", "m2 m-2"),
        "gpp": ("gpp", "gC m-2 d-1"),
        "et": ("ET", "mm d-1"),
        "nbe": ("nbe", "gC m-2 d-1"),
    }
    variables = {
        k: _var(dims, truth.outputs[src], u, f"noise-free DALEC993 {src}")
        for k, (src, u) in pick.items()
    }
    return _gridded(
        land.truth,
        variables,
        _attrs(config, "twin truth: model outputs", "none (truth)"),
        (cal.start, cal.end),
    )


def geotiff_array(values: Array, grid: LatLonGrid, units: str, long_name: str) -> xr.DataArray:
    """North-up EPSG:4326 raster of a (lat ascending, lon) field."""
    try:
        import rioxarray  # noqa: F401 - registers the .rio accessor
        from rasterio.transform import from_origin
    except ImportError as err:  # pragma: no cover - both are declared dependencies
        raise ImportError(
            "twin GeoTIFFs need rioxarray and rasterio (pip install rioxarray)"
        ) from err

    da = xr.DataArray(
        values[::-1].astype(np.float32),
        dims=("y", "x"),
        coords={"y": grid.lat.centres[::-1], "x": grid.lon.centres},
        attrs={"units": units, "long_name": long_name},
    )
    da = da.rio.write_crs("EPSG:4326")
    da = da.rio.write_transform(
        from_origin(grid.lon.start, grid.lat.edges[-1], grid.lon.step, grid.lat.step)
    )
    return da.rio.write_nodata(np.nan, encoded=False)


def co2_table(cal: Calendar) -> pd.DataFrame:
    return pd.DataFrame(
        {"year": cal.year, "month": cal.month, "co2_ppm": np.round(co2_ppm(cal), 3)}
    )


def write_product_netcdf(ds: xr.Dataset, path: Path) -> None:
    """Atomically, zlib level 1, uint8 fill 255, times in days since 2000-01-01."""
    encoding: dict[str, dict[str, Any]] = {
        v: {"zlib": True, "complevel": 1} for v in ds.data_vars if ds[v].dtype.kind in "fiu"
    }
    for v in ds.data_vars:
        if ds[v].dtype == np.uint8:
            encoding[v]["_FillValue"] = 255
    for t in ("time", "time_bnds"):
        if t in ds.variables:
            encoding[t] = {"units": TIME_UNITS, "calendar": "standard", "dtype": "float64"}
    for c in ("lat_bnds", "lon_bnds", "lat", "lon"):
        if c in ds.variables:
            encoding[c] = {"_FillValue": None}
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, encoding=encoding, format="NETCDF4")


def write_geotiff(da: xr.DataArray, path: Path) -> None:
    with atomic_path(path) as tmp:
        da.rio.to_raster(tmp, driver="GTiff", compress="DEFLATE", recalc_transform=False)


def write_product(product: xr.Dataset | xr.DataArray | pd.DataFrame, path: Path) -> None:
    """Write one product in its format: a table as CSV, a raster as GeoTIFF, else netCDF."""
    if isinstance(product, pd.DataFrame):
        with atomic_path(path) as tmp:
            product.to_csv(tmp, index=False)
    elif isinstance(product, xr.DataArray):
        write_geotiff(product, path)
    else:
        write_product_netcdf(product, path)
