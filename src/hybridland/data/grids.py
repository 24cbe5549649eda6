"""Analysis grids: regular latitude-longitude grids with explicit CF cell bounds.

Two target grids are used by the study, both cut to a study box:

* ``0p25deg``: the global 0.25-degree grid, cell EDGES on multiples of 0.25 degree
  (centres at x.125, x.375, ...).
* ``0p125deg``: the NLDAS 1/8-degree grid, cell CENTRES at x.0625, x.1875, ...,
  i.e. cell edges on multiples of 0.125 degree.

A study box is snapped outward to whole cells, so a grid always covers its box.
Longitudes are in degrees east on [-180, 180]; latitudes ascend from south to north.

The default study box is the Upper Colorado River Basin window of NLDAS,
36.0 to 42.75 N and 112.25 to 104.375 W: 54 x 63 (lat x lon) cells on the 1/8-degree
grid. 63 is odd, so the 0.25-degree grid of the same box, snapped outward to whole
quarter-degree cells, has 27 x 32 cells and reaches 104.25 W on its eastern side.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

#: Authalic (equal-area) Earth radius in metres, used for all cell areas.
EARTH_RADIUS_M = 6_371_007.2

#: Resolution (degrees) of the named target grids; both have cell edges on
#: multiples of their resolution, hence an edge anchor of 0.
STANDARD_RESOLUTIONS: dict[str, float] = {"0p25deg": 0.25, "0p125deg": 0.125}

# Snapping tolerance, in cells: a box bound within this of a cell edge is on it.
_SNAP_TOL = 1e-9


class Box(NamedTuple):
    """A study box in degrees: longitudes east, latitudes north."""

    west: float
    east: float
    south: float
    north: float


#: Upper Colorado River Basin: the 54 x 63-cell NLDAS 1/8-degree window.
UCRB_BOX = Box(west=-112.25, east=-104.375, south=36.0, north=42.75)


def check_box(box: Box, where: str = "box") -> None:
    """Raise ValueError naming the bad bound if ``box`` is empty, inverted or off the sphere."""
    for key, value in box._asdict().items():
        if not math.isfinite(value):
            raise ValueError(f"{where}: {key} is not a finite number ({value!r})")
    if not -90.0 <= box.south < 90.0:
        raise ValueError(f"{where}: south ({box.south}) must lie in [-90, 90)")
    if not -90.0 < box.north <= 90.0:
        raise ValueError(f"{where}: north ({box.north}) must lie in (-90, 90]")
    if box.north <= box.south:
        raise ValueError(f"{where}: north ({box.north}) must exceed south ({box.south})")
    if box.east <= box.west:
        raise ValueError(f"{where}: east ({box.east}) must exceed west ({box.west})")
    if box.east - box.west > 360.0:
        raise ValueError(
            f"{where}: east ({box.east}) - west ({box.west}) spans more than 360 degrees"
        )


def snapped_edges(low: float, high: float, resolution: float, anchor: float) -> np.ndarray:
    """Cell edges ``anchor + k * resolution`` covering [low, high], snapped outward."""
    k_low = math.floor((low - anchor) / resolution + _SNAP_TOL)
    k_high = math.ceil((high - anchor) / resolution - _SNAP_TOL)
    return anchor + np.arange(k_low, k_high + 1) * resolution


def spherical_cell_area(lat_edges: np.ndarray, lon_edges: np.ndarray) -> np.ndarray:
    """Exact area (m^2) of lat-lon cells on a sphere of radius :data:`EARTH_RADIUS_M`.

    Args:
        lat_edges: (nlat + 1,) ascending latitude edges in degrees.
        lon_edges: (nlon + 1,) ascending longitude edges in degrees.

    Returns:
        (nlat, nlon) areas: R^2 * dlon(rad) * (sin(lat_north) - sin(lat_south)).
    """
    band = np.diff(np.sin(np.deg2rad(lat_edges)))
    width = np.diff(np.deg2rad(lon_edges))
    return EARTH_RADIUS_M**2 * np.outer(band, width)


def _edges_to_bounds(edges: np.ndarray) -> tuple[tuple[float, float], ...]:
    return tuple((float(a), float(b)) for a, b in itertools.pairwise(edges))


def _midpoint_edges(centres: np.ndarray, name: str) -> np.ndarray:
    """Edges halfway between centres; the outer edges mirror the first and last spacing."""
    if centres.size < 2:
        raise ValueError(
            f"{name}: need at least 2 cell centres to infer bounds, got {centres.size}"
        )
    mid = (centres[:-1] + centres[1:]) / 2
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def _check_axis(name: str, centres: np.ndarray, bounds: np.ndarray, axis: str) -> None:
    if centres.ndim != 1 or centres.size == 0:
        raise ValueError(f"grid {name!r}: {axis} must be a non-empty 1-D sequence")
    if bounds.shape != (centres.size, 2):
        raise ValueError(
            f"grid {name!r}: {axis}_bounds has shape {bounds.shape}, expected ({centres.size}, 2)"
        )
    if np.any(np.diff(centres) <= 0):
        raise ValueError(f"grid {name!r}: {axis} centres are not strictly ascending")
    if np.any(bounds[:, 1] <= bounds[:, 0]):
        raise ValueError(f"grid {name!r}: {axis}_bounds has a cell of zero or negative width")
    gaps = np.flatnonzero(~np.isclose(bounds[1:, 0], bounds[:-1, 1], rtol=0, atol=1e-9))
    if gaps.size:
        raise ValueError(
            f"grid {name!r}: {axis}_bounds are not contiguous between cells {gaps[0]} and "
            f"{gaps[0] + 1} ({bounds[gaps[0], 1]} != {bounds[gaps[0] + 1, 0]})"
        )
    outside = np.flatnonzero((centres < bounds[:, 0]) | (centres > bounds[:, 1]))
    if outside.size:
        raise ValueError(
            f"grid {name!r}: {axis} centre {centres[outside[0]]} lies outside its bounds "
            f"{tuple(bounds[outside[0]])}"
        )


@dataclass(frozen=True)
class Grid:
    """A rectilinear latitude-longitude grid with CF cell bounds.

    Attributes:
        name: grid name, used in file paths and as the ``grid`` attribute of outputs.
        lat: (nlat,) ascending cell-centre latitudes, degrees north.
        lon: (nlon,) ascending cell-centre longitudes, degrees east.
        lat_bounds: (nlat, 2) south and north edge of each row, contiguous.
        lon_bounds: (nlon, 2) west and east edge of each column, contiguous.

    Values are stored as tuples, so a Grid is immutable, hashable and comparable.
    """

    name: str
    lat: tuple[float, ...]
    lon: tuple[float, ...]
    lat_bounds: tuple[tuple[float, float], ...]
    lon_bounds: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        for field in ("lat", "lon"):
            object.__setattr__(self, field, tuple(float(v) for v in np.ravel(getattr(self, field))))
            bounds = np.asarray(getattr(self, f"{field}_bounds"), dtype=float)
            object.__setattr__(self, f"{field}_bounds", tuple(map(tuple, bounds.tolist())))
        _check_axis(self.name, np.asarray(self.lat), np.asarray(self.lat_bounds), "lat")
        _check_axis(self.name, np.asarray(self.lon), np.asarray(self.lon_bounds), "lon")
        if self.lat_edges[0] < -90.0 or self.lat_edges[-1] > 90.0:
            raise ValueError(
                f"grid {self.name!r}: latitude edges {self.lat_edges[0]}..{self.lat_edges[-1]} "
                "leave [-90, 90]"
            )
        if self.lon_edges[-1] - self.lon_edges[0] > 360.0 + 1e-9:
            raise ValueError(f"grid {self.name!r}: longitudes span more than 360 degrees")

    @classmethod
    def regular(
        cls,
        name: str,
        resolution: float,
        west: float,
        east: float,
        south: float,
        north: float,
        *,
        anchor: float,
    ) -> Grid:
        """Regular grid of square cells covering the box, snapped outward to whole cells.

        Args:
            name: grid name, e.g. ``"0p25deg"``.
            resolution: cell size in degrees (both directions).
            west, east, south, north: the study box in degrees.
            anchor: position (degrees) of one cell edge; edges lie at
                ``anchor + k * resolution`` in both latitude and longitude. Both
                standard grids use 0.0 (0.25-degree edges on multiples of 0.25; NLDAS
                1/8-degree edges on multiples of 0.125, centres at x.0625).
        """
        if not (math.isfinite(resolution) and resolution > 0):
            raise ValueError(f"grid {name!r}: resolution must be positive, got {resolution!r}")
        check_box(Box(west, east, south, north), where=f"grid {name!r} box")
        lat_edges = snapped_edges(south, north, resolution, anchor)
        lon_edges = snapped_edges(west, east, resolution, anchor)
        return cls(
            name=name,
            lat=tuple((lat_edges[:-1] + lat_edges[1:]) / 2),
            lon=tuple((lon_edges[:-1] + lon_edges[1:]) / 2),
            lat_bounds=_edges_to_bounds(lat_edges),
            lon_bounds=_edges_to_bounds(lon_edges),
        )

    @classmethod
    def from_edges(
        cls,
        name: str,
        lat: Sequence[float],
        lon: Sequence[float],
        lat_edges: np.ndarray,
        lon_edges: np.ndarray,
    ) -> Grid:
        """Grid with given centres and cell edges (e.g. a product's CF bounds)."""
        return cls(
            name,
            tuple(map(float, lat)),
            tuple(map(float, lon)),
            _edges_to_bounds(lat_edges),
            _edges_to_bounds(lon_edges),
        )

    @classmethod
    def from_centres(cls, name: str, lat: Sequence[float], lon: Sequence[float]) -> Grid:
        """Grid whose bounds lie halfway between the given ascending centres.

        The outer edges mirror the first and last spacing. Used for source products
        that carry only cell centres.
        """
        lat_a = np.asarray(lat, dtype=float)
        lon_a = np.asarray(lon, dtype=float)
        lat_edges = np.clip(_midpoint_edges(lat_a, f"{name}: lat"), -90.0, 90.0)
        lon_edges = _midpoint_edges(lon_a, f"{name}: lon")
        return cls(
            name,
            tuple(lat_a),
            tuple(lon_a),
            _edges_to_bounds(lat_edges),
            _edges_to_bounds(lon_edges),
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Grid:
        """Grid from ``{name, resolution, box: {west, east, south, north}[, anchor]}``.

        ``resolution`` may be left out for a standard grid name (``0p25deg``,
        ``0p125deg``); ``anchor`` defaults to 0.0 (edges on multiples of the resolution).
        """
        unknown = set(config) - {"name", "resolution", "box", "anchor"}
        if unknown:
            raise ValueError(f"grid config: unknown key(s) {sorted(unknown)}")
        if "name" not in config or "box" not in config:
            raise ValueError(f"grid config: 'name' and 'box' are required, got {sorted(config)}")
        name = str(config["name"])
        resolution = config.get("resolution", STANDARD_RESOLUTIONS.get(name))
        if resolution is None:
            raise ValueError(
                f"grid config {name!r}: 'resolution' is required for a non-standard grid"
            )
        standard = STANDARD_RESOLUTIONS.get(name)
        if standard is not None and not math.isclose(float(resolution), standard):
            raise ValueError(
                f"grid config {name!r}: resolution {resolution} contradicts the standard {standard}"
            )
        box = config["box"]
        missing = {"west", "east", "south", "north"} - set(box)
        if missing:
            raise ValueError(f"grid config {name!r}: box lacks {sorted(missing)}")
        return cls.regular(
            name,
            float(resolution),
            float(box["west"]),
            float(box["east"]),
            float(box["south"]),
            float(box["north"]),
            anchor=float(config.get("anchor", 0.0)),
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(nlat, nlon)."""
        return len(self.lat), len(self.lon)

    @property
    def lat_edges(self) -> np.ndarray:
        """(nlat + 1,) ascending latitude edges, degrees north."""
        bounds = np.asarray(self.lat_bounds)
        return np.append(bounds[:, 0], bounds[-1, 1])

    @property
    def lon_edges(self) -> np.ndarray:
        """(nlon + 1,) ascending longitude edges, degrees east."""
        bounds = np.asarray(self.lon_bounds)
        return np.append(bounds[:, 0], bounds[-1, 1])

    @property
    def box(self) -> Box:
        """The outer edges of the grid."""
        return Box(
            float(self.lon_edges[0]),
            float(self.lon_edges[-1]),
            float(self.lat_edges[0]),
            float(self.lat_edges[-1]),
        )

    def cell_area(self) -> np.ndarray:
        """(nlat, nlon) cell areas in m^2 on the sphere (exact spherical-band formula)."""
        return spherical_cell_area(self.lat_edges, self.lon_edges)

    def to_dataset(self) -> xr.Dataset:
        """CF coordinates ``lat``, ``lon`` with their bounds, and ``cell_area`` (m2)."""
        lat_attrs = {
            "standard_name": "latitude",
            "long_name": "latitude of cell centre",
            "units": "degrees_north",
            "axis": "Y",
            "bounds": "lat_bounds",
        }
        lon_attrs = {
            "standard_name": "longitude",
            "long_name": "longitude of cell centre",
            "units": "degrees_east",
            "axis": "X",
            "bounds": "lon_bounds",
        }
        area_attrs = {
            "standard_name": "cell_area",
            "long_name": "area of grid cell on the sphere",
            "units": "m2",
        }
        return xr.Dataset(
            data_vars={
                "lat_bounds": (("lat", "bnds"), np.asarray(self.lat_bounds)),
                "lon_bounds": (("lon", "bnds"), np.asarray(self.lon_bounds)),
                "cell_area": (("lat", "lon"), self.cell_area(), area_attrs),
            },
            coords={
                "lat": ("lat", np.asarray(self.lat), lat_attrs),
                "lon": ("lon", np.asarray(self.lon), lon_attrs),
            },
            attrs={"grid": self.name, "Conventions": "CF-1.8"},
        )


def standard_grid(name: str, box: Box = UCRB_BOX) -> Grid:
    """One of the study's named grids (``0p25deg``, ``0p125deg``) cut to ``box``."""
    if name not in STANDARD_RESOLUTIONS:
        raise ValueError(f"grid name {name!r} is not one of {sorted(STANDARD_RESOLUTIONS)}")
    return Grid.regular(name, STANDARD_RESOLUTIONS[name], *box, anchor=0.0)
