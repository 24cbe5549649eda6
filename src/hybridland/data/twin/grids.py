"""The twin's regular product grids and its area-weighted means between them.

Every twin grid is regular, with edges at ``start + k * step`` (rounded to 1e-10
degree) and exact (start, step) kept for refinement, parent lookup and GeoTIFF
transforms; products may have non-square cells (NBE 4 x 5 degrees) and their own
lat/lon anchors (LAI at the box corner), see :data:`PRODUCT_GRIDS`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hybridland.data.grids import Box, snapped_edges
from hybridland.data.twin.config import TwinConfig

Array = np.ndarray


class Axis(NamedTuple):
    """Regular cell axis with edges ``start + step * (0..size)`` (degrees)."""

    start: float
    step: float
    size: int

    @property
    def edges(self) -> Array:
        return np.round(self.start + self.step * np.arange(self.size + 1), 10)

    @property
    def centres(self) -> Array:
        return np.round(self.start + self.step * (np.arange(self.size) + 0.5), 10)


class LatLonGrid(NamedTuple):
    """A regular grid; latitudes ascend."""

    lat: Axis
    lon: Axis

    @property
    def shape(self) -> tuple[int, int]:
        return (self.lat.size, self.lon.size)


class GridSpec(NamedTuple):
    """Native grid of a product: spacing and edge anchor (None: the box's own corner)."""

    dlat: float
    dlon: float
    lat_anchor: float | None = 0.0
    lon_anchor: float | None = 0.0


PRODUCT_GRIDS: dict[str, GridSpec] = {
    "forcing": GridSpec(0.1, 0.1),
    "landcover": GridSpec(0.05, 0.05),
    "soil": GridSpec(0.05, 0.05),
    "lai": GridSpec(0.073, 0.073, None, None),
    "sif": GridSpec(0.05, 0.05),
    "et": GridSpec(0.1, 0.1),
    "nbe": GridSpec(4.0, 5.0, 0.0, 2.5),
    "ewt": GridSpec(0.5, 0.5),
    "biomass": GridSpec(0.1, 0.1),
    "som": GridSpec(0.05, 0.05),
}
"""Native grid of each gridded product (see docs/twin.md)."""


def covering_axis(low: float, high: float, step: float, anchor: float) -> Axis:
    """The axis of :func:`hybridland.data.grids.snapped_edges` for [low, high]."""
    edges = snapped_edges(low, high, step, anchor)
    return Axis(float(edges[0]), step, edges.size - 1)


def box_grid(box: Box, spec: GridSpec) -> LatLonGrid:
    """The grid of ``spec`` covering ``box``."""
    lat0 = box.south if spec.lat_anchor is None else spec.lat_anchor
    lon0 = box.west if spec.lon_anchor is None else spec.lon_anchor
    return LatLonGrid(
        covering_axis(box.south, box.north, spec.dlat, lat0),
        covering_axis(box.west, box.east, spec.dlon, lon0),
    )


def truth_grid(config: TwinConfig) -> LatLonGrid:
    r = config.truth_resolution
    return box_grid(config.box, GridSpec(r, r))


def refine(grid: LatLonGrid, factor: int) -> LatLonGrid:
    """The same extent with each cell split into factor x factor cells."""
    return LatLonGrid(
        Axis(grid.lat.start, grid.lat.step / factor, grid.lat.size * factor),
        Axis(grid.lon.start, grid.lon.step / factor, grid.lon.size * factor),
    )


def overlap_matrix(source_edges: Array, target_edges: Array) -> Array:
    """(n_target, n_source) lengths of the overlap of each pair of 1-D cells."""
    lo = np.maximum(target_edges[:-1, None], source_edges[None, :-1])
    hi = np.minimum(target_edges[1:, None], source_edges[None, 1:])
    return np.clip(hi - lo, 0.0, None)


def area_weights(source: LatLonGrid, target: LatLonGrid) -> tuple[Array, Array]:
    """Separable spherical overlap areas: (lat weights (ty, sy), lon weights (tx, sx))."""
    wy = overlap_matrix(np.sin(np.deg2rad(source.lat.edges)), np.sin(np.deg2rad(target.lat.edges)))
    wx = overlap_matrix(source.lon.edges, target.lon.edges)
    return wy, wx


def covered_area_mean(
    field: Array, source: LatLonGrid, target: LatLonGrid, min_valid: float = 0.5
) -> Array:
    """Area-weighted mean of ``field`` (..., lat, lon) over the covered part of each target cell.

    Only the part of a target cell inside the source grid counts, and only its
    finite source cells; a target cell whose finite area is below ``min_valid`` of
    its covered area (or zero) is NaN. This differs from
    :func:`hybridland.data.regrid.conservative`, which counts the part of a target
    cell outside the source as missing: a 4 x 5 degree NBE cell around a small box
    is the mean over the box here, and NaN there.
    """
    wy, wx = area_weights(source, target)
    valid = np.isfinite(field)
    filled = np.where(valid, field, 0.0)
    num = wy @ (filled @ wx.T)
    den = wy @ (valid.astype(np.float64) @ wx.T)
    covered = np.outer(wy.sum(1), wx.sum(1))
    keep = (den > 0) & (den >= min_valid * covered - 1e-15)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(keep, num / np.where(den > 0, den, 1.0), np.nan)


def covered_fraction(source: LatLonGrid, target: LatLonGrid) -> Array:
    """Fraction of each target cell's area that lies inside the source grid."""
    wy, wx = area_weights(source, target)
    full = np.outer(np.diff(np.sin(np.deg2rad(target.lat.edges))), np.diff(target.lon.edges))
    return np.outer(wy.sum(1), wx.sum(1)) / full


def parent_index(child: Axis, parent: Axis) -> Array:
    """Index of the parent cell containing each child cell centre."""
    return np.floor((child.centres - parent.start) / parent.step + 1e-9).astype(int)


def to_truth_grid(field: Array, forcing_grid: LatLonGrid, truth: LatLonGrid) -> Array:
    """Forcing-grid field (..., fy, fx) seen by each truth cell (..., ty, tx)."""
    iy = parent_index(truth.lat, forcing_grid.lat)
    ix = parent_index(truth.lon, forcing_grid.lon)
    return field[..., iy[:, None], ix[None, :]]
