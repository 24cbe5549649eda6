"""Remap native products onto an analysis :class:`~hybridland.data.grids.Grid`.

One method per kind of variable:

* :func:`conservative`: continuous fields (forcing, LAI, soil, ...), area-conservative.
* :func:`class_fractions`: IGBP land cover to fractions of the 10 plant functional types.
* :func:`p95_then_max`: canopy height, 95th percentile per ~1 km block, then maximum per cell.
* :func:`assign_to_cells`: coarse products (NBE 4 x 5 deg, EWT 0.5 deg), each target cell
  takes the value of the coarse cell that contains its centre.

Fields are :class:`xarray.DataArray` objects with dims ``(..., lat, lon)``, cell-centre
coordinates in degrees (longitudes on [-180, 180) after reading) and NaN where missing.
:func:`regrid_file` is the I/O edge: read netCDF or GeoTIFF, remap, write CF netCDF atomically.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from hybridland.data.grids import Grid, snapped_edges
from hybridland.data.landcover import IGBP_CLASSES, IGBP_FILL, IGBP_WATER, PFT_FROM_IGBP
from hybridland.io import write_netcdf

logger = logging.getLogger(__name__)

Method = Literal["conservative", "class_fractions", "p95_then_max", "assign_to_cells"]
Backend = Literal["xesmf", "xarray-regrid"]
Remapper = Callable[[xr.DataArray, Grid], xr.DataArray | xr.Dataset]


# A source is passed through p95_then_max when it has fewer than this many cells per
# block side (a ~1 km product against 1/120-degree blocks).
_BLOCK_PASS_THROUGH = 1.5
_LAT_NAMES = ("latitude", "y")
_LON_NAMES = ("longitude", "x")


# ---------------------------------------------------------------- preparing sources


def _label(field: xr.DataArray) -> str:
    return f"variable {field.name!r}" if field.name is not None else "field"


def as_lat_lon(field: xr.DataArray) -> xr.DataArray:
    """``field`` with dims (..., lat, lon), both ascending, longitudes on [-180, 180)."""
    renames = {n: "lat" for n in _LAT_NAMES if n in field.dims and "lat" not in field.dims}
    renames |= {n: "lon" for n in _LON_NAMES if n in field.dims and "lon" not in field.dims}
    field = field.rename(renames)
    if "lat" not in field.dims or "lon" not in field.dims:
        raise ValueError(f"{_label(field)}: dims {field.dims} lack 'lat' and/or 'lon'")
    for dim in ("lat", "lon"):
        bad = np.count_nonzero(~np.isfinite(np.asarray(field[dim].values, dtype=float)))
        if bad:
            raise ValueError(f"{_label(field)}: {bad} {dim} values are not finite")
    if float(field.lat.min()) < -90 or float(field.lat.max()) > 90:
        raise ValueError(
            f"{_label(field)}: latitudes {float(field.lat.min())}.."
            f"{float(field.lat.max())} leave [-90, 90]"
        )
    if float(field.lon.max()) >= 180 or float(field.lon.min()) < -180:
        shifted = (field.lon + 180.0) % 360.0 - 180.0
        moved = {
            c: field[c] + (shifted - field.lon)
            for c in ("lon_bound_low", "lon_bound_high")
            if c in field.coords
        }
        field = field.assign_coords(lon=shifted, **moved)
    field = field.sortby(["lat", "lon"])
    for dim in ("lat", "lon"):
        if np.any(np.diff(field[dim].values) == 0):
            raise ValueError(f"{_label(field)}: duplicate {dim} values")
    return field.transpose(..., "lat", "lon")


BOUND_COORDS = ("lat_bound_low", "lat_bound_high", "lon_bound_low", "lon_bound_high")


def cell_edges(field: xr.DataArray, dim: str) -> np.ndarray:
    """Cell edges along ``dim``: the product's CF bounds when it had them, else midpoints."""
    low, high = f"{dim}_bound_low", f"{dim}_bound_high"
    if low in field.coords:
        return np.append(field[low].values, field[high].values[-1]).astype(float)
    centres = field[dim].values.astype(float)
    if centres.size < 2:
        raise ValueError(
            f"{_label(field)}: need at least 2 {dim} values or CF bounds, got {centres.size}"
        )
    return _midpoint_edges(centres)


def with_cf_bounds(field: xr.DataArray, dataset: xr.Dataset) -> xr.DataArray:
    """Attach the CF bounds of lat/lon (if the file has them) as coordinates along each axis."""
    for dim in ("lat", "lon"):
        name = dataset[dim].attrs.get("bounds")
        if name in dataset.variables:
            pairs = np.sort(np.asarray(dataset[name].values, float), axis=-1)
            field = field.assign_coords(
                {f"{dim}_bound_low": (dim, pairs[:, 0]), f"{dim}_bound_high": (dim, pairs[:, 1])}
            )
    return field


def _midpoint_edges(centres: np.ndarray) -> np.ndarray:
    mid = (centres[:-1] + centres[1:]) / 2
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def crop_to_grid(field: xr.DataArray, grid: Grid, margin: int = 1) -> xr.DataArray:
    """Source cells overlapping ``grid``, plus ``margin`` cells on each side where present."""
    box = grid.box
    keep: dict[str, slice] = {}
    for dim, low, high in (("lat", box.south, box.north), ("lon", box.west, box.east)):
        centres = field[dim].values.astype(float)
        edges = cell_edges(field, dim)
        hits = np.flatnonzero((edges[1:] > low) & (edges[:-1] < high))
        if hits.size == 0:
            raise ValueError(
                f"{_label(field)}: {dim} {centres[0]}..{centres[-1]} misses grid "
                f"{grid.name!r} ({low}..{high})"
            )
        keep[dim] = slice(max(hits[0] - margin, 0), hits[-1] + margin + 1)
    return field.isel(keep)


def _pad_with_nan(
    field: xr.DataArray, dim: str, low: float, high: float, extra: int
) -> xr.DataArray:
    """NaN cells beyond each end of ``dim`` until [low, high] is covered, plus ``extra``."""
    centres = field[dim].values.astype(float)
    step_low, step_high = centres[1] - centres[0], centres[-1] - centres[-2]
    gap_low = max(0.0, (centres[0] - step_low / 2) - low)
    gap_high = max(0.0, high - (centres[-1] + step_high / 2))
    n_low = math.ceil(gap_low / step_low - 1e-9) + extra
    n_high = math.ceil(gap_high / step_high - 1e-9) + extra
    padded = field.pad({dim: (n_low, n_high)}, mode="constant", constant_values=np.nan)
    new = np.concatenate(
        [
            centres[0] - step_low * np.arange(n_low, 0, -1),
            centres,
            centres[-1] + step_high * np.arange(1, n_high + 1),
        ]
    )
    return padded.assign_coords({dim: new})


def _is_global_lon(field: xr.DataArray) -> bool:
    edges = cell_edges(field, "lon")
    return bool(edges[-1] - edges[0] >= 360.0 - 1e-6)


def padded_source(field: xr.DataArray, grid: Grid, *, extra: int) -> xr.DataArray:
    """The source cropped to ``grid`` and padded with NaN cells to cover all of it.

    Backends count only the source cells they see in a target cell's valid-area
    fraction; padding makes a target cell that reaches past the source count as
    partly missing instead. ``extra`` more cells go beyond the grid's edges (xarray-regrid
    drops target cells whose centre lies beyond the outermost source centre).
    """
    source = crop_to_grid(field, grid).astype(float)
    source = source.drop_vars([c for c in BOUND_COORDS if c in source.coords])
    box = grid.box
    source = _pad_with_nan(source, "lat", box.south, box.north, extra)
    if not _is_global_lon(source):
        source = _pad_with_nan(source, "lon", box.west, box.east, extra)
    return source


def _on_grid(result: xr.DataArray, grid: Grid, like: xr.DataArray) -> xr.DataArray:
    """Result with the grid's own coordinates and the source's name and attributes."""
    coords = grid.to_dataset()
    result = result.transpose(..., "lat", "lon").assign_coords(lat=coords.lat, lon=coords.lon)
    result.attrs = dict(like.attrs)
    result.name = like.name
    return result


# ---------------------------------------------------------------- conservative


@functools.cache
def conservative_backend() -> Backend:
    """The conservative backend: xesmf when it imports, otherwise xarray-regrid.

    This is the only place the choice is made; it is logged once per process.
    """
    try:
        import xesmf  # noqa: F401
    except ImportError as err:
        logger.info(
            "conservative remap: using xarray-regrid because xesmf cannot be imported (%s); "
            "xesmf needs the ESMF library (esmpy), which is not on PyPI: install both from "
            "conda-forge to use xesmf",
            err,
        )
        return "xarray-regrid"
    logger.info("conservative remap: using xesmf")
    return "xesmf"


def conservative_xarray_regrid(field: xr.DataArray, grid: Grid, min_valid: float) -> xr.DataArray:
    """Backend: xarray-regrid's conservative method (source bounds at centre midpoints)."""
    import xarray_regrid  # noqa: F401  (registers the .regrid accessor)

    source = padded_source(field, grid, extra=1)
    target = grid.to_dataset()
    result = source.regrid.conservative(
        target, latitude_coord="lat", skipna=True, nan_threshold=1.0 - min_valid
    )
    return _on_grid(result, grid, field)


def conservative_xesmf(field: xr.DataArray, grid: Grid, min_valid: float) -> xr.DataArray:
    """Backend: xesmf (ESMF) conservative weights between the same explicit cell bounds."""
    import xesmf

    source = padded_source(field, grid, extra=0)
    source = source.isel(lat=np.abs(source.lat.values) < 90.0)  # no cells beyond a pole
    source_grid = Grid.from_centres("source", source.lat.values, source.lon.values)
    source_cells = xr.Dataset(
        coords={
            "lat": source.lat,
            "lon": source.lon,
            "lat_b": ("lat_b", source_grid.lat_edges),
            "lon_b": ("lon_b", source_grid.lon_edges),
        }
    )
    target_cells = grid.to_dataset().assign_coords(
        lat_b=("lat_b", grid.lat_edges), lon_b=("lon_b", grid.lon_edges)
    )
    regridder = xesmf.Regridder(
        source_cells,
        target_cells,
        "conservative",
        periodic=_is_global_lon(source),
        unmapped_to_nan=True,
    )
    result = regridder(source, keep_attrs=True, skipna=True, na_thres=1.0 - min_valid)
    return _on_grid(result, grid, field)


_CONSERVATIVE_BACKENDS: dict[Backend, Callable[[xr.DataArray, Grid, float], xr.DataArray]] = {
    "xesmf": conservative_xesmf,
    "xarray-regrid": conservative_xarray_regrid,
}


def conservative(field: xr.DataArray, grid: Grid, *, min_valid: float = 0.5) -> xr.DataArray:
    """Area-conservative remap of a lat/lon field onto ``grid``.

    Args:
        field: values on cell centres, dims (..., lat, lon), NaN where missing. Source
            cell bounds lie halfway between centres.
        grid: target grid with centres and bounds.
        min_valid: smallest valid-area fraction kept in a target cell; cells with less
            become NaN. Means are normalised by the valid area (NaN-aware).

    Returns:
        Field on ``grid``, dims (..., lat, lon), with the source's name and attributes.
    """
    if not 0.0 <= min_valid <= 1.0:
        raise ValueError(f"{_label(field)}: min_valid must lie in [0, 1], got {min_valid}")
    field = as_lat_lon(field)
    return _CONSERVATIVE_BACKENDS[conservative_backend()](field, grid, min_valid)


# ---------------------------------------------------------------- land cover


def check_igbp(classes: xr.DataArray) -> xr.DataArray:
    """IGBP codes as floats with NaN for the fill value (255) and for NaN input.

    Raises ValueError naming the first value that is neither 0..16 nor 255.
    """
    values = classes.astype(float)
    data = values.values
    finite = data[np.isfinite(data)]
    bad = finite[~np.isin(finite, [*IGBP_CLASSES, IGBP_FILL])]
    if bad.size:
        raise ValueError(
            f"{_label(classes)}: value {bad[0]:g} is not an IGBP class (0..16) nor the fill "
            f"value {IGBP_FILL} ({bad.size} cells)"
        )
    return values.where(values != IGBP_FILL)


def class_fractions(classes: xr.DataArray, grid: Grid, *, min_valid: float = 0.5) -> xr.Dataset:
    """Fractions of the 10 PFTs in the land part of each target cell, from IGBP classes.

    Args:
        classes: MCD12C1 IGBP codes (see :data:`IGBP_CLASSES`), dims (lat, lon); 255 or
            NaN where missing.
        grid: target grid.
        min_valid: smallest valid (non-fill) area fraction kept in a target cell.

    Returns:
        Dataset with ``pft_fraction`` (pft, lat, lon), summing to 1 over ``pft`` (NaN in
        cells without land), and ``land_fraction`` (lat, lon): non-water share of the
        valid area. PFTs are the groups of :data:`PFT_FROM_IGBP`.
    """
    codes = check_igbp(as_lat_lon(classes))
    groups = {"water": (IGBP_WATER,), **PFT_FROM_IGBP}
    indicators = xr.concat(
        [codes.isin(members).astype(float).where(codes.notnull()) for members in groups.values()],
        dim=pd.Index(list(groups), name="class"),
    ).rename("class_indicator")
    area = conservative(indicators, grid, min_valid=min_valid)
    pft_area = area.drop_sel({"class": "water"}).rename({"class": "pft"})
    land = pft_area.sum("pft", skipna=False)
    fractions = (pft_area / land).where(land > 0)
    fractions.attrs = {
        "long_name": "area fraction of the land part of the cell by plant functional type",
        "units": "1",
        "pft_from_igbp": "; ".join(f"{k}: {v}" for k, v in PFT_FROM_IGBP.items()),
    }
    land.attrs = {"long_name": "land (non-water) fraction of the valid cell area", "units": "1"}
    return xr.Dataset({"pft_fraction": fractions.transpose("pft", ...), "land_fraction": land})


# ---------------------------------------------------------------- canopy height


def _bin_index(coords: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Index of the [edge_i, edge_i+1) interval holding each coordinate; -1 outside."""
    index = np.searchsorted(edges, coords, side="right") - 1
    return np.where((index >= 0) & (index < edges.size - 1), index, -1)


def _group_ids(
    lat: np.ndarray, lon: np.ndarray, lat_edges: np.ndarray, lon_edges: np.ndarray
) -> np.ndarray:
    """(nlat, nlon) flat id of the (row, column) bin of each cell; -1 outside the edges."""
    rows, cols = _bin_index(lat, lat_edges), _bin_index(lon, lon_edges)
    ids = rows[:, None] * (lon_edges.size - 1) + cols[None, :]
    return np.where((rows[:, None] >= 0) & (cols[None, :] >= 0), ids, -1)


def grouped_quantile(values: np.ndarray, groups: np.ndarray, n_groups: int, q: float) -> np.ndarray:
    """Quantile ``q`` (numpy's linear method) of finite ``values`` per group id; NaN if empty."""
    keep = np.isfinite(values) & (groups >= 0)
    v, g = values[keep], groups[keep]
    order = np.lexsort((v, g))
    v, g = v[order], g[order]
    counts = np.bincount(g, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    out = np.full(n_groups, np.nan)
    has = counts > 0
    position = starts[has] + q * (counts[has] - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, starts[has] + counts[has] - 1)
    out[has] = v[low] + (position - low) * (v[high] - v[low])
    return out


def grouped_max(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Maximum of finite ``values`` per group id; NaN for groups without any."""
    keep = np.isfinite(values) & (groups >= 0)
    out = np.full(n_groups, -np.inf)
    np.maximum.at(out, groups[keep], values[keep])
    return np.where(np.isneginf(out), np.nan, out)


def block_p95(height: xr.DataArray, block_deg: float) -> xr.DataArray:
    """95th percentile of ``height`` (lat, lon) within blocks of ``block_deg`` degrees.

    Blocks have edges on multiples of ``block_deg``; a source cell belongs to the block
    holding its centre.
    """
    lat, lon = height.lat.values.astype(float), height.lon.values.astype(float)
    lat_edges = snapped_edges(lat[0], lat[-1], block_deg, 0.0)
    lon_edges = snapped_edges(lon[0], lon[-1], block_deg, 0.0)
    lat_edges = lat_edges if lat_edges.size > 1 else np.append(lat_edges, lat_edges + block_deg)
    lon_edges = lon_edges if lon_edges.size > 1 else np.append(lon_edges, lon_edges + block_deg)
    shape = (lat_edges.size - 1, lon_edges.size - 1)
    ids = _group_ids(lat, lon, lat_edges, lon_edges)
    p95 = grouped_quantile(height.values.ravel(), ids.ravel(), shape[0] * shape[1], 0.95)
    return xr.DataArray(
        p95.reshape(shape),
        dims=("lat", "lon"),
        coords={
            "lat": (lat_edges[:-1] + lat_edges[1:]) / 2,
            "lon": (lon_edges[:-1] + lon_edges[1:]) / 2,
        },
    )


def p95_then_max(height: xr.DataArray, grid: Grid, *, block_deg: float = 1 / 120) -> xr.DataArray:
    """Canopy height: 95th percentile per ~1 km block, then the maximum per target cell.

    Args:
        height: canopy height, dims (lat, lon), NaN where missing. A source with fewer
            than 1.5 cells per block side (a ~1 km product) is taken as the blocks.
        grid: target grid; a block belongs to the cell holding its centre.
        block_deg: block size in degrees (1/120 degree, ~1 km).

    Returns:
        (lat, lon) maximum of the block percentiles, NaN where a cell has no valid block.
    """
    field = as_lat_lon(height)
    extra = [d for d in field.dims if d not in ("lat", "lon")]
    if extra:
        raise ValueError(
            f"{_label(height)}: p95_then_max takes (lat, lon) only, got extra dims {extra}"
        )
    field = crop_to_grid(field, grid, margin=0)
    spacing = min(np.median(np.diff(field.lat.values)), np.median(np.diff(field.lon.values)))
    if spacing * _BLOCK_PASS_THROUGH > block_deg:
        logger.info(
            "p95_then_max: source spacing %.5g deg is not finer than the %.5g-deg "
            "block; its cells are taken as the blocks",
            spacing,
            block_deg,
        )
        blocks = field
    else:
        blocks = block_p95(field, block_deg)
    ids = _group_ids(blocks.lat.values, blocks.lon.values, grid.lat_edges, grid.lon_edges)
    peak = grouped_max(blocks.values.ravel(), ids.ravel(), grid.shape[0] * grid.shape[1])
    result = xr.DataArray(peak.reshape(grid.shape), dims=("lat", "lon"))
    return _on_grid(result, grid, height)


# ---------------------------------------------------------------- coarse products


def assign_to_cells(
    coarse: xr.DataArray, grid: Grid, *, source: Grid | None = None
) -> xr.DataArray:
    """Each target cell takes the value of the coarse cell that contains its centre.

    Args:
        coarse: coarse field, dims (..., lat, lon), e.g. NBE on 4 x 5 deg or EWT on 0.5 deg.
        grid: target grid.
        source: the coarse grid with its true bounds (e.g. half-size polar rows); by
            default bounds lie halfway between centres. A centre on an edge goes to the
            cell north/east of it.

    Returns:
        Field on ``grid`` (no interpolation), NaN where a centre lies outside the source.
    """
    field = as_lat_lon(coarse)
    if source is None:
        source = Grid.from_edges(
            "source",
            field.lat.values,
            field.lon.values,
            cell_edges(field, "lat"),
            cell_edges(field, "lon"),
        )
    if source.shape != (field.lat.size, field.lon.size):
        raise ValueError(
            f"{_label(coarse)}: source grid shape {source.shape} differs from "
            f"the field's {(field.lat.size, field.lon.size)}"
        )
    lon_edges = source.lon_edges
    lon = np.asarray(grid.lon)
    if lon_edges[-1] - lon_edges[0] >= 360.0 - 1e-9:
        lon = (lon - lon_edges[0]) % 360.0 + lon_edges[0]
    rows, cols = _bin_index(np.asarray(grid.lat), source.lat_edges), _bin_index(lon, lon_edges)
    picked = field.isel(
        lat=xr.DataArray(np.maximum(rows, 0), dims="lat"),
        lon=xr.DataArray(np.maximum(cols, 0), dims="lon"),
    )
    inside = xr.DataArray((rows[:, None] >= 0) & (cols[None, :] >= 0), dims=("lat", "lon"))
    return _on_grid(picked.drop_vars(["lat", "lon"]).where(inside), grid, coarse)


# ---------------------------------------------------------------- I/O edge


def open_geotiff(path: Path | str) -> xr.DataArray:
    """Read a single-band EPSG:4326 GeoTIFF as (lat, lon), ascending, nodata as NaN.

    Raises:
        ValueError: naming the file and the CRS found, if the CRS is missing or another one.
    """
    import rioxarray

    path = Path(path)
    raster = rioxarray.open_rasterio(path, masked=True, mask_and_scale=True)
    if not isinstance(raster, xr.DataArray):
        raise TypeError(f"{path}: expected a single raster, got {type(raster).__name__}")
    crs = raster.rio.crs
    if crs is None:
        raise ValueError(f"{path}: no CRS found; expected EPSG:4326")
    if crs.to_epsg() != 4326:
        raise ValueError(f"{path}: CRS is {crs.to_string()}; expected EPSG:4326")
    if raster.sizes.get("band", 1) != 1:
        raise ValueError(f"{path}: has {raster.sizes['band']} bands; expected 1")
    raster = raster.squeeze("band", drop=True).drop_vars("spatial_ref", errors="ignore")
    raster.attrs = {
        k: v[0] if isinstance(v, tuple | list) and len(v) == 1 else v
        for k, v in raster.attrs.items()
        if k in ("units", "long_name", "standard_name", "description")
    }
    return as_lat_lon(raster.rename(path.stem)).load()


def open_netcdf(path: Path | str, variable: str | None = None) -> xr.DataArray:
    """One (..., lat, lon) variable of a netCDF file, loaded into memory.

    ``variable`` may be left out when the file holds exactly one variable on lat/lon.
    """
    path = Path(path)
    with xr.open_dataset(path) as dataset:
        dataset = dataset.rename(
            {
                n: {"latitude": "lat", "longitude": "lon"}[n]
                for n in ("latitude", "longitude")
                if n in dataset.dims
            }
        )
        candidates = [str(n) for n, v in dataset.data_vars.items() if {"lat", "lon"} <= set(v.dims)]
        if variable is None:
            if len(candidates) != 1:
                raise ValueError(
                    f"{path}: name the variable to remap; lat/lon variables are {candidates}"
                )
            variable = candidates[0]
        if variable not in candidates:
            raise ValueError(
                f"{path}: variable {variable!r} is not among the lat/lon variables {candidates}"
            )
        field = with_cf_bounds(dataset[variable].load(), dataset)
    field.encoding = {}
    try:
        return as_lat_lon(field)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def open_native(path: Path | str, variable: str | None = None) -> xr.DataArray:
    """Read a native product: GeoTIFF (.tif, .tiff) or netCDF (.nc, .nc4, .cdf)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return open_geotiff(path)
    if suffix in (".nc", ".nc4", ".cdf"):
        return open_netcdf(path, variable)
    raise ValueError(f"{path}: unknown format {suffix!r}; expected .nc, .nc4, .cdf, .tif or .tiff")


REMAPPERS: dict[str, Remapper] = {
    "conservative": conservative,
    "class_fractions": class_fractions,
    "p95_then_max": p95_then_max,
    "assign_to_cells": assign_to_cells,
}
_CELL_METHODS = {"conservative": "area: mean", "p95_then_max": "area: maximum"}


def to_output_dataset(
    result: xr.DataArray | xr.Dataset, grid: Grid, method: str, source: Path
) -> xr.Dataset:
    """CF dataset: the result plus the grid's bounds and cell areas, with provenance."""
    data = result if isinstance(result, xr.Dataset) else result.to_dataset()
    out = xr.merge([grid.to_dataset(), data], compat="override", combine_attrs="override")
    for name in data.data_vars:
        out[name].attrs["cell_measures"] = "area: cell_area"
        if method in _CELL_METHODS:
            out[name].attrs["cell_methods"] = _CELL_METHODS[method]
    out.attrs = {
        "Conventions": "CF-1.8",
        "grid": grid.name,
        "regrid_method": method,
        "source": source.name,
        "history": f"{pd.Timestamp.now('UTC'):%Y-%m-%dT%H:%M:%SZ} hybridland.data.regrid "
        f"{method} onto {grid.name}",
    }
    return out


def lat_lon_variables(path: Path | str) -> list[str]:
    """Names of the variables of a native file that lie on lat/lon (a GeoTIFF has one)."""
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        return [path.stem]
    with xr.open_dataset(path) as dataset:
        dims = {"lat", "lon", "latitude", "longitude"}
        return [str(n) for n, v in dataset.data_vars.items() if len(dims & set(v.dims)) == 2]


def regrid_file(
    source: Path | str,
    destination: Path | str,
    grid: Grid,
    method: Method,
    *,
    min_valid: float = 0.5,
    variables: Sequence[str] | None = None,
) -> None:
    """Read lat/lon variables of a native product, remap them, write CF netCDF atomically.

    Args:
        source: netCDF or EPSG:4326 GeoTIFF.
        destination: netCDF output; written to a temporary file, then renamed.
        grid: target grid; its name becomes the ``grid`` global attribute.
        method: one of :data:`REMAPPERS`.
        min_valid: smallest valid fraction of a target cell (conservative, class_fractions).
        variables: the variables to remap (default: every variable on lat/lon).
    """
    source = Path(source)
    if method not in REMAPPERS:
        raise ValueError(
            f"{source}: unknown regrid method {method!r}; expected one of {sorted(REMAPPERS)}"
        )
    options = {"min_valid": min_valid} if method in ("conservative", "class_fractions") else {}
    results = []
    available = lat_lon_variables(source)
    unknown = sorted(set(variables or ()) - set(available))
    if unknown:
        raise ValueError(
            f"{source}: variables {unknown} are not among its lat/lon variables {available}"
        )
    for name in variables or available:
        native = open_native(source, None if source.suffix.lower() in (".tif", ".tiff") else name)
        logger.info(
            "regrid %s:%s %s onto %s %s with %s",
            source,
            name,
            dict(native.sizes),
            grid.name,
            grid.shape,
            method,
        )
        results.append(REMAPPERS[method](native, grid, **options))
    if not results:
        raise ValueError(f"{source}: no variable on lat/lon to regrid")
    merged = xr.merge(results, combine_attrs="drop_conflicts")
    write_netcdf(to_output_dataset(merged, grid, method, source), destination)
    logger.info("wrote %s", destination)


__all__ = [
    "REMAPPERS",
    "Method",
    "assign_to_cells",
    "class_fractions",
    "conservative",
    "conservative_backend",
    "open_geotiff",
    "open_native",
    "p95_then_max",
    "regrid_file",
]
