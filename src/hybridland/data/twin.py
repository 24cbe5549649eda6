"""The embedded twin study: a synthetic region with known truth, written as raw products.

:func:`synthesize` builds a physically plausible but entirely synthetic landscape
(by default the Upper Colorado River Basin box of the NLDAS 1/8-degree window),
runs DALEC993 on it with KNOWN parameter fields, and writes every input the study
needs in the native resolution and format of the real product it stands for, so
that the regridding stage does real work. The truth is written too, so the study
can score recovered parameters, group contributions and SHAP rankings.

Everything is deterministic from ``TwinConfig.seed``. Each component draws from its
own NumPy generator seeded with ``(seed, crc32(component name))``, so changing one
component (say the number of sites) never changes another. Nothing here is random
in JAX: the model run is deterministic, so no JAX key is needed.

Grids
-----
All grids are regular latitude-longitude grids, latitudes ascending, cell edges at
``anchor + k * step``, snapped outward to cover the box. Area weights are exact on
the sphere (proportional to the difference of sin(latitude) times the longitude
overlap). A product cell that reaches outside the truth grid is the mean over the
part inside it, over land truth cells only (NaN where less than half of the covered
part is land; the 4 x 5 degree NBE keeps any land).

* fine grid: truth resolution / 6 (1/120 degree = ~1 km by default), the same
  extent as the truth grid. Terrain, land cover, forest age and height live here.
* truth grid: ``truth_resolution`` (0.05 degree), the box snapped outward. DALEC
  runs here; predictors and true parameters are defined here.
* native product grids (:data:`PRODUCT_GRIDS`): forcing 0.1 (ERA5-Land-like),
  LAI 0.073 anchored at the box's own south-west corner (the box's own 0.073-degree
  grid; a stand-in for a non-nested LAI product), SIF proxy 0.05 (LCSPP), ET 0.1
  (GLEAM), NBE on the GEOS-Chem 4 x 5 degree grid used by CMS-Flux (latitude edges
  on multiples of 4, longitude edges at 2.5 + 5k), EWT 0.5 (GRACE JPL mascons),
  biomass 0.1, soil carbon 0.05, land cover and soil 0.05 (MCD12C1-like).
  GeoTIFFs (elevation, canopy height, forest age) are on the fine grid, north-up.

Landscape
---------
* Elevation (m, 1200-4300): broad plateaus (a smooth-stepped ~60 km field,
  1200-2500 m) plus mountain ranges (ridged ~12 km noise inside a ~40 km range
  mask, up to +1700 m) and ~3 km detail. Smooth fields are Gaussian-filtered white
  noise on a padded domain (so the map does not wrap), z-scored.
* Climatology on the fine grid: MAT = 12 - 6.5 (z - 1500)/1000 - 0.7 (lat - 39)
  + 0.6 n (degC, lapse rate 6.5 K/km); MAP = (190 + 950 smoothstep((z-1300)/2600))
  exp(0.15 n) (mm/yr, wetter uphill).
* Land cover (IGBP classes of MCD12C1 on the fine grid): each natural class has a
  climatic niche (Gaussian in MAT and log MAP, :data:`NICHES`) plus patchy noise and
  the highest score wins: ENF on high wet slopes, DBF (aspen) patches within them,
  woody savanna (pinyon-juniper) at mid elevation, open shrub (sagebrush) and
  grassland in dry basins, alpine grass/barren above treeline. Valleys (terrain
  below its 8 km mean) host cropland/mosaic, a few towns and lakes; wetlands in
  wet hollows (mountain meadows); snow/ice on the highest summits. EBF and DNF
  appear as rare "classifier confusion" pixels so that no PFT column is constant.
* Forest age (yr) and canopy height (m) on forest pixels (IGBP 1-5): age from a
  smooth field (30-200 yr) with young disturbance patches (5-30 yr); height
  saturates with age, H = Hmax(climate) (1 - exp(-age/45)); 0 on non-forest land,
  NaN over water.
* Soil (0.05 deg): sand/silt/clay percent from an additive log-ratio of three
  smooth fields (sums to 100), gravel percent (rockier uphill) and bulk density
  (g cm-3). Soil is weakly tied to elevation, so SOIL is a correlated but
  irrelevant predictor group.
* The landscape is statistical, generated on the box's own grids: a sub-box is a
  different (statistically alike) landscape, not a cut-out of a larger box.

Forcing (monthly, 0.1 deg)
--------------------------
t_mean = MAT + 13 cos(2 pi (doy - 200)/365.25) + weather anomaly (a regional AR(1)
series plus a smooth ~150 km field, a warming trend of 0.03 K/yr, and warmer dry
summers); diurnal range 12-20 K (larger when dry and in summer). Precipitation is
MAP times a seasonal shape with a winter (snow) maximum stronger in the north and
uphill and a July-August monsoon stronger in the south, times lognormal annual
(sigma 0.2) and monthly (sigma 0.5, regional plus spatial) factors. Shortwave
radiation is top-of-atmosphere daily insolation (FAO-56) times a transmissivity
lowered in wet months. VPD = mean saturation vapour pressure of t_max and t_min
(Tetens) minus that of a dew point below t_min by a depression that grows with
aridity and summer. CO2 = 389 ppm in mid-2010 rising 2.3 ppm/yr, with a 3 ppm
seasonal cycle peaking in May. Burned area: fire events (Poisson in number, more
in hot, dry months of May-October) centred on fuel-weighted cells (woody cover)
with a Gaussian footprint; the burned fraction per month is 0 almost everywhere.
Each truth cell takes the forcing of the 0.1-degree cell that contains it, so the
forcing file is exactly the forcing that produced the truth. MAT and MAP
predictors and DALEC's t_mean/p_mean are the time means of that forcing
(MAP = 365.25 x mean precipitation).

Designed truth (:func:`true_parameters`, :data:`INFLUENCE`)
-----------------------------------------------------------
PFT fractions are renormalised to sum to one over the ten groups (a row with no
cover at all counts as bare, NVG); a PFT-dependent parameter is the fraction-
weighted mean of the per-PFT values in :data:`PFT_VALUES`. Then:

* CLIM, nonlinear in MAT: Q10 = 0.032 + 0.03 expit(-(MAT - 4)/2.5) (cold soils
  more sensitive, saturating); canopy_efficiency = PFT x (0.45 + 0.55
  exp(-((MAT - 8)/8)^2 / 2)) (a hump); f_gpp = 0.35 + 0.15 expit((MAT - 6)/3);
  Bday/Fday: onset 2 days earlier and leaf fall 2 days later per K of MAT.
* CLIM, in MAP and elevation: uWUE = PFT x (1 + 0.35 tanh((450 - MAP)/250)) (drier,
  more efficient); moisture_factor = 0.15 + 0.6 exp(-MAP/400); boese_r = 0.012 +
  0.02 smoothstep((MAP - 200)/600); leaf_lifespan = PFT x (1 + 1.2 arid)
  (1 - 0.5 wet) with arid = smoothstep((420 - MAP)/200), wet = smoothstep((MAP -
  600)/600) (a PFT x CLIM interaction: without it DALEC's leaf-carbon feedback
  kills sparse dry canopies and lets wet ones grow without bound);
  Csom = 2000 + 6 MAP + max(elevation - 1200, 0) + 4000 x forest share (gC m-2).
* PFT shifts: LCMA, leaf_lifespan, f_fol, f_root, flab, the phenology phases and
  periods, field_capacity (runoff_focal_point = 10x, initial_water = 0.8x),
  tor_root, tor_litter, the combustion completenesses, resilience, and the initial
  labile, foliar (winter LAI x LCMA), root, litter and (forest share) SOM pools.
* AGE: tor_wood = 4e-5 + 3e-4 exp(-forest_age/30) d-1 (young stands turn over
  fast); Cwood = PFT base (shrubs) + 300 canopy_height^1.25 gC m-2.
* SOIL: NO influence at all. :func:`true_parameters` never reads a soil column.
* Fixed (no designed variation): decomposition_rate, tor_som, IWUE,
  wilting_point_frac, dom_cf, lab_lifespan, sif_alpha, sif_beta_plus_three, p_fol,
  p_wood (:data:`FIXED_VALUES`).

The simulation is spun-up-ish, not in equilibrium: on the default box about 2 %
of land cells end with a peak LAI below 0.1 (the hottest, driest basins, cold
alpine grass), about 2 % above 6 (wet aspen and alpine grass), and the regional
NBE wanders within +-0.3 gC m-2 d-1 from year to year.

Phases are set so that the peak of labile release and of leaf fall falls on the
target day of year: Bday = 730.5 + doy + o(L, w), with o the CARDAMOM offset
(spec 6.8). Every value is finally clipped 2 % of the log-range inside its spec
bounds, so the function stays valid for any predictor input (e.g. SHAP
perturbations).

Observations
------------
Noise is y = x exp(r e1 - r^2/2) + a e2 with e ~ N(0, 1), independent per cell and
time: r is a mean-preserving relative error, a an additive one
(:data:`DEFAULT_NOISE`); non-negative products are clipped at 0. Levels: LAI r 10 %
a 0.1; SIF proxy r 15 %; ET r 10 %; NBE a 0.1 gC m-2 d-1; EWT anomaly (water pool
minus its time mean) a 10 mm; annual live biomass (annual mean of
labile+foliar+root+wood) r 20 %; static soil carbon (time-mean SOM) r 30 %;
eddy-covariance sites GPP and RECO (= gpp + nee) r 10 % a 0.2, ET r 10 % a 0.1.
Gaps are NaN (:data:`DEFAULT_GAPS`): LAI and SIF are missing where the month's mean
temperature is below ``snow_threshold`` (snow cover) and at a random 5 % of the
rest; ET 3 % random; EWT loses whole months (3 % random plus the GRACE/GRACE-FO gap
of July 2017 - May 2018 when inside the period); sites lose 10 % of their months.
Sites are truth cells dominated (>= 60 %) by one PFT, cycling through the PFTs by
area.

Files (:data:`FILENAMES`)
-------------------------
CF-style netCDF (lat/lon ascending with ``lat_bnds``/``lon_bnds``, ``time`` at
mid-month with ``time_bnds``, units and long names, NaN for missing), written
atomically. ``landcover_igbp.nc`` holds the majority class ``igbp_class`` (uint8,
fill 255) and, as MCD12C1 does, ``igbp_percent`` per class. The GeoTIFFs are
EPSG:4326 rasters on the fine grid. ``truth_outputs.nc`` (noise-free LAI, GPP, ET,
NBE on the truth grid) is skipped above 200 MB.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from scipy import fft as sfft
from scipy import ndimage, signal, special

from hybridland.data.grids import UCRB_BOX, Box
from hybridland.io import atomic_path
from hybridland.model import dalec, parameters

logger = logging.getLogger(__name__)

Array = np.ndarray
Predictors = Mapping[str, Any]  # column name -> array-like (dict, DataFrame, Dataset)

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


class Noise(NamedTuple):
    """Observation noise: y = x exp(relative e1 - relative^2/2) + absolute e2."""

    relative: float
    absolute: float


DEFAULT_NOISE: dict[str, Noise] = {
    "lai": Noise(0.10, 0.10),
    "sif": Noise(0.15, 0.0),
    "et": Noise(0.10, 0.0),
    "nbe": Noise(0.0, 0.1),
    "ewt": Noise(0.0, 10.0),
    "biomass": Noise(0.20, 0.0),
    "som": Noise(0.30, 0.0),
    "ec_gpp": Noise(0.10, 0.2),
    "ec_reco": Noise(0.10, 0.2),
    "ec_et": Noise(0.10, 0.1),
}
"""Noise per observed quantity (units of the product)."""

DEFAULT_GAPS: dict[str, float] = {
    "lai": 0.05,
    "sif": 0.05,
    "et": 0.03,
    "nbe": 0.0,
    "ewt": 0.03,
    "biomass": 0.0,
    "som": 0.0,
    "ec": 0.10,
}
"""Random gap fraction per product (EWT: whole months; ec: site-months)."""

#: Fine (~1 km) pixels per truth cell along each axis.
FINE_PER_TRUTH = 6
#: Forcing resolution (degrees); truth cells must nest in forcing cells.
FORCING_RESOLUTION = 0.1

_CONFIG_KEYS = (
    "box",
    "years",
    "seed",
    "truth_resolution",
    "n_sites",
    "snow_threshold",
    "noise",
    "gaps",
    "write_truth_outputs",
)


@dataclass(frozen=True)
class TwinConfig:
    """Everything that shapes a twin region.

    Attributes:
        box: study box (degrees, cell edges); every grid is snapped outward from it.
        years: first and last calendar year (inclusive) of monthly data.
        seed: the one seed of every random component.
        truth_resolution: truth-grid spacing in degrees (must divide 0.1).
        n_sites: number of eddy-covariance sites.
        snow_threshold: monthly mean temperature (degC) below which LAI and SIF are
            missing (snow cover).
        noise: observation noise per quantity (keys of DEFAULT_NOISE).
        gaps: random gap fraction per product (keys of DEFAULT_GAPS).
        write_truth_outputs: also write noise-free model outputs on the truth grid.
    """

    box: Box = UCRB_BOX
    years: tuple[int, int] = (2010, 2023)
    seed: int = 1
    truth_resolution: float = 0.05
    n_sites: int = 6
    snow_threshold: float = -2.0
    noise: Mapping[str, Noise] = field(default_factory=lambda: dict(DEFAULT_NOISE))
    gaps: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_GAPS))
    write_truth_outputs: bool = True

    def __post_init__(self) -> None:
        _check_config(self)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> TwinConfig:
        """Build from plain data (e.g. YAML); unknown keys raise ValueError naming them.

        ``box`` is a mapping with west/east/south/north; ``years`` is [first, last];
        ``noise`` maps a quantity to {relative, absolute} and ``gaps`` a product to a
        fraction, both merged over the defaults.
        """
        _reject_unknown(mapping, _CONFIG_KEYS, "twin config")
        kw: dict[str, Any] = {k: v for k, v in mapping.items() if k not in ("box", "noise", "gaps")}
        if "box" in mapping:
            _reject_unknown(mapping["box"], Box._fields, "twin config box")
            kw["box"] = Box(
                **{k: float(v) for k, v in {**UCRB_BOX._asdict(), **mapping["box"]}.items()}
            )
        if "years" in mapping:
            kw["years"] = tuple(int(y) for y in mapping["years"])
        if "noise" in mapping:
            _reject_unknown(mapping["noise"], tuple(DEFAULT_NOISE), "twin config noise")
            noise = dict(DEFAULT_NOISE)
            for name, value in mapping["noise"].items():
                _reject_unknown(value, Noise._fields, f"twin config noise.{name}")
                noise[name] = Noise(**{**noise[name]._asdict(), **value})
            kw["noise"] = noise
        if "gaps" in mapping:
            _reject_unknown(mapping["gaps"], tuple(DEFAULT_GAPS), "twin config gaps")
            kw["gaps"] = {**DEFAULT_GAPS, **{k: float(v) for k, v in mapping["gaps"].items()}}
        return cls(**kw)


def _reject_unknown(mapping: Any, known: tuple[str, ...], where: str) -> None:
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
        )


def _check_config(c: TwinConfig) -> None:
    b = c.box
    if not (all(math.isfinite(v) for v in b) and b.west < b.east and b.south < b.north):
        raise ValueError(f"twin config box: need finite west < east and south < north, got {b}")
    if not (-180.0 <= b.west and b.east <= 180.0 and -80.0 <= b.south and b.north <= 80.0):
        raise ValueError(f"twin config box: {b} is outside lon [-180, 180] / lat [-80, 80]")
    if len(c.years) != 2 or c.years[0] > c.years[1] or c.years[0] < 1901:
        raise ValueError(
            f"twin config years: need [first, last] with 1901 <= first <= last, got {c.years}"
        )
    ratio = FORCING_RESOLUTION / c.truth_resolution
    if c.truth_resolution <= 0 or abs(ratio - round(ratio)) > 1e-6:
        raise ValueError(
            f"twin config truth_resolution: {c.truth_resolution} must divide {FORCING_RESOLUTION}"
        )
    if c.n_sites < 0:
        raise ValueError(f"twin config n_sites: must be >= 0, got {c.n_sites}")
    _reject_unknown(c.noise, tuple(DEFAULT_NOISE), "twin config noise")
    _reject_unknown(c.gaps, tuple(DEFAULT_GAPS), "twin config gaps")
    for name, n in c.noise.items():
        if n.relative < 0 or n.absolute < 0:
            raise ValueError(f"twin config noise.{name}: levels must be >= 0, got {n}")
    for name, g in c.gaps.items():
        if not 0.0 <= g < 1.0:
            raise ValueError(f"twin config gaps.{name}: fraction must lie in [0, 1), got {g}")


# ---------------------------------------------------------------------------
# Grids and area-weighted aggregation
# ---------------------------------------------------------------------------


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
"""Native grid of each gridded product (see the module docstring)."""


def covering_axis(low: float, high: float, step: float, anchor: float = 0.0) -> Axis:
    """Cells with edges at ``anchor + k * step`` covering [low, high], snapped outward."""
    k0 = math.floor((low - anchor) / step + 1e-9)
    k1 = math.ceil((high - anchor) / step - 1e-9)
    return Axis(anchor + k0 * step, step, k1 - k0)


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


def area_mean(
    field: Array, source: LatLonGrid, target: LatLonGrid, min_valid: float = 0.5
) -> Array:
    """Area-weighted mean of ``field`` (..., lat, lon) over each target cell.

    Only the part of a target cell inside the source grid counts, and only its
    finite source cells; a target cell whose finite area is below ``min_valid`` of
    its covered area (or zero) is NaN.
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


# ---------------------------------------------------------------------------
# Random fields
# ---------------------------------------------------------------------------


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator of one named component, independent of every other."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def smooth_fields(rng: np.random.Generator, shape: tuple[int, ...], length: float) -> Array:
    """Gaussian-filtered white noise, z-scored per field.

    Args:
        shape: (..., ny, nx); leading axes are independent fields.
        length: standard deviation of the Gaussian filter, in pixels.
    """
    pad = int(min(2.5 * length, 400)) + 1
    padded = (*shape[:-2], shape[-2] + 2 * pad, shape[-1] + 2 * pad)
    white = rng.standard_normal(padded)
    ky = sfft.fftfreq(padded[-2])[:, None]
    kx = sfft.rfftfreq(padded[-1])[None, :]
    kernel = np.exp(-2.0 * (np.pi * length) ** 2 * (ky**2 + kx**2))
    out = sfft.irfft2(sfft.rfft2(white, workers=-1) * kernel, s=padded[-2:], workers=-1)
    out = out[..., pad : pad + shape[-2], pad : pad + shape[-1]]
    mean = out.mean(axis=(-2, -1), keepdims=True)
    std = out.std(axis=(-2, -1), keepdims=True)
    return (out - mean) / np.where(std > 0, std, 1.0)


def smoothstep(x: Array) -> Array:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


# ---------------------------------------------------------------------------
# Terrain, climate, land cover, forest structure, soil
# ---------------------------------------------------------------------------


def elevation_field(rng: np.random.Generator, shape: tuple[int, int], km_per_px: float) -> Array:
    """Plateaus plus ridged mountain ranges, metres in [1200, 4300]."""
    broad, ranges, ridges, detail = (
        smooth_fields(rng, shape, s / km_per_px) for s in (60.0, 40.0, 12.0, 3.0)
    )
    plateau = 1200.0 + 1300.0 * smoothstep(special.ndtr(1.2 * broad))
    in_range = special.ndtr(1.8 * (ranges - 0.5))
    ridge = np.clip(1.0 - np.abs(ridges) / 1.5, 0.0, 1.0) ** 1.5
    raw = plateau + 1700.0 * in_range * ridge + 120.0 * detail
    # A soft floor (softplus over 60 m) keeps basin floors gently varying, not clipped.
    return np.minimum(1200.0 + 60.0 * np.logaddexp(0.0, (raw - 1200.0) / 60.0), 4300.0)


def climatology(
    elevation: Array, lat: Array, noise_t: Array, noise_p: Array
) -> tuple[Array, Array]:
    """Long-term MAT (degC) and MAP (mm yr-1) from elevation (m) and latitude (deg)."""
    mat = 12.0 - 6.5 * (elevation - 1500.0) / 1000.0 - 0.7 * (lat - 39.0) + 0.6 * noise_t
    uphill = smoothstep((elevation - 1300.0) / 2600.0)
    return mat, (190.0 + 950.0 * uphill) * np.exp(0.15 * noise_p)


IGBP_NAMES: tuple[str, ...] = (
    "water",
    "evergreen_needleleaf_forest",
    "evergreen_broadleaf_forest",
    "deciduous_needleleaf_forest",
    "deciduous_broadleaf_forest",
    "mixed_forest",
    "closed_shrubland",
    "open_shrubland",
    "woody_savanna",
    "savanna",
    "grassland",
    "permanent_wetland",
    "cropland",
    "urban_and_built_up",
    "cropland_natural_mosaic",
    "snow_and_ice",
    "barren",
)
"""IGBP classes 0-16 in the MCD12C1 convention."""

FOREST_CLASSES = (1, 2, 3, 4, 5)

#: Climatic niches of the natural classes: (class, MAT opt, MAT width, MAP opt,
#: log-MAP width, bias, noise weight). A class may have several niches.
NICHES: tuple[tuple[int, float, float, float, float, float, float], ...] = (
    (1, 2.5, 3.0, 750.0, 0.30, 0.3, 0.6),
    (2, 9.0, 2.0, 380.0, 0.25, -1.0, 0.6),
    (3, 0.0, 2.0, 850.0, 0.30, -1.5, 0.6),
    (4, 4.0, 2.5, 700.0, 0.30, -0.6, 1.2),
    (5, 3.5, 2.5, 720.0, 0.30, -1.2, 0.8),
    (6, 7.0, 2.5, 520.0, 0.25, -0.4, 0.6),
    (7, 10.0, 4.0, 250.0, 0.40, 0.4, 0.6),
    (8, 8.5, 2.5, 380.0, 0.25, 0.2, 0.6),
    (9, 10.0, 3.0, 330.0, 0.30, -0.8, 0.6),
    (10, -2.5, 2.5, 950.0, 0.40, 0.0, 0.6),
    (10, 9.0, 3.0, 300.0, 0.30, -0.6, 0.8),
    (16, -5.0, 2.0, 1050.0, 0.50, -0.6, 0.6),
    (16, 12.0, 2.0, 200.0, 0.20, -1.0, 0.8),
)


def natural_cover(mat: Array, map_: Array, noise: Array) -> Array:
    """Best-scoring natural class per pixel; ``noise`` is (len(NICHES), ny, nx)."""
    scores = np.stack(
        [
            bias
            + weight * noise[i]
            - 0.5 * ((mat - t_opt) / t_width) ** 2
            - 0.5 * (np.log(map_ / p_opt) / p_width) ** 2
            for i, (_, t_opt, t_width, p_opt, p_width, bias, weight) in enumerate(NICHES)
        ]
    )
    classes = np.array([n[0] for n in NICHES], np.uint8)
    return classes[np.argmax(scores, axis=0)]


def landcover_classes(
    elevation: Array, mat: Array, map_: Array, relief: Array, noise: Mapping[str, Array]
) -> Array:
    """IGBP class per fine pixel: climate niches, then valley and summit overrides.

    ``relief`` is elevation minus its ~8 km mean (m, negative in valleys); ``noise``
    holds z-scored fields 'niches' (stacked), 'crop', 'urban', 'lake', 'wet'.
    """
    classes = natural_cover(mat, map_, noise["niches"])
    valley = (relief < -60.0) & (elevation < 2400.0)
    irrigable = valley & (map_ < 650.0)
    classes = np.where(irrigable & (noise["crop"] > 0.6), 12, classes)
    classes = np.where(irrigable & (noise["crop"] > 0.1) & (noise["crop"] <= 0.6), 14, classes)
    classes = np.where((relief < -40.0) & (map_ > 450.0) & (noise["wet"] > 1.5), 11, classes)
    classes = np.where(valley & (elevation < 2000.0) & (noise["urban"] > 2.2), 13, classes)
    classes = np.where((relief < -20.0) & (noise["lake"] > 2.3), 0, classes)
    classes = np.where((elevation > 4150.0) & (mat < -5.0), 15, classes)
    return classes.astype(np.uint8)


def forest_structure(
    classes: Array, mat: Array, map_: Array, z_age: Array, z_disturbed: Array, u: Array
) -> tuple[Array, Array]:
    """Forest age (yr) and canopy height (m): 0 on non-forest land, NaN over water."""
    forest = np.isin(classes, FOREST_CLASSES)
    age = 30.0 + 170.0 * special.ndtr(z_age)
    age = np.where(z_disturbed > 1.4, 5.0 + 25.0 * u, age)
    wet = smoothstep((map_ - 350.0) / 600.0)
    h_max = (10.0 + 22.0 * wet * np.exp(-0.5 * ((mat - 3.0) / 6.0) ** 2)) * np.where(
        classes == 4, 0.7, 1.0
    )
    height = h_max * (1.0 - np.exp(-age / 45.0))
    water = classes == 0
    age = np.where(water, np.nan, np.where(forest, age, 0.0))
    height = np.where(water, np.nan, np.where(forest, height, 0.0))
    return age.astype(np.float32), height.astype(np.float32)


SOIL: tuple[str, ...] = ("BULK_DEN", "SAND", "SILT", "CLAY", "GRAVEL")


def soil_texture(z: Array, elevation: Array) -> dict[str, Array]:
    """Soil columns from five z-scored fields ``z`` (5, ny, nx) and elevation (m).

    SAND + SILT + CLAY = 100 (percent, additive log-ratio); GRAVEL percent (vol),
    rockier uphill; BULK_DEN g cm-3, lower where clay-rich and uphill.
    """
    up = (elevation - 2000.0) / 1000.0
    logits = np.stack([0.35 + 0.45 * z[0], 0.10 + 0.45 * z[1], -0.45 + 0.45 * z[2]])
    parts = np.exp(logits) / np.exp(logits).sum(0) * 100.0
    gravel = np.clip(12.0 * np.exp(0.45 * z[3] + 0.15 * up), 0.0, 60.0)
    bulk = np.clip(1.45 - 0.004 * (parts[2] - 20.0) - 0.03 * up + 0.07 * z[4], 0.9, 1.8)
    return {
        "BULK_DEN": bulk,
        "SAND": parts[0],
        "SILT": parts[1],
        "CLAY": parts[2],
        "GRAVEL": gravel,
    }


# ---------------------------------------------------------------------------
# Calendar and forcing
# ---------------------------------------------------------------------------

EPOCH = np.datetime64("2000-01-01", "D")


class Calendar(NamedTuple):
    """Monthly time axis; each (time,)."""

    start: Array  # datetime64[D], first day of month
    end: Array  # datetime64[D], first day of next month
    ndays: Array  # days in month
    days: Array  # d since 2000-01-01 at mid-month
    doy: Array  # day of year at mid-month (1-based)
    year: Array
    month: Array  # 1-12


def monthly_calendar(first_year: int, last_year: int) -> Calendar:
    months = np.arange(f"{first_year}-01", f"{last_year + 1}-01", dtype="datetime64[M]")
    start = months.astype("datetime64[D]")
    end = (months + 1).astype("datetime64[D]")
    ndays = (end - start).astype(float)
    jan1 = months.astype("datetime64[Y]").astype("datetime64[D]")
    return Calendar(
        start=start,
        end=end,
        ndays=ndays,
        days=(start - EPOCH).astype(float) + ndays / 2.0,
        doy=(start - jan1).astype(float) + 1.0 + (ndays - 1.0) / 2.0,
        year=months.astype("datetime64[Y]").astype(int) + 1970,
        month=months.astype(int) % 12 + 1,
    )


def co2_series(cal: Calendar) -> Array:
    """Global CO2 (ppm): 389 mid-2010, +2.3 ppm/yr, 3 ppm cycle peaking in May."""
    years = (cal.days - (np.datetime64("2010-07-02") - EPOCH).astype(float)) / 365.25
    return 389.0 + 2.3 * years + 3.0 * np.cos(2.0 * np.pi * (cal.doy - 135.0) / 365.25)


def toa_radiation(lat: Array, doy: Array) -> Array:
    """Daily top-of-atmosphere shortwave (MJ m-2 d-1), FAO-56 eq. 21."""
    phi = np.deg2rad(lat)
    dr = 1.0 + 0.033 * np.cos(2.0 * np.pi * doy / 365.0)
    decl = 0.409 * np.sin(2.0 * np.pi * doy / 365.0 - 1.39)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(decl), -1.0, 1.0))
    return (
        24.0
        * 60.0
        / np.pi
        * 0.082
        * dr
        * (ws * np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.sin(ws))
    )


def saturation_vapour_pressure(t: Array) -> Array:
    """Tetens over water, hPa, for t in degC."""
    return 6.1078 * np.exp(17.27 * t / (t + 237.3))


class Weather(NamedTuple):
    """Stochastic anomalies: regional (time,) series and spatial (time, ny, nx) fields."""

    t_regional: Array  # K
    p_regional: Array  # z-score
    p_annual: Array  # z-score, one per month (constant within a year)
    t_field: Array  # z-score
    p_field: Array  # z-score


def weather(
    rng: np.random.Generator, cal: Calendar, shape: tuple[int, int], cells_per_150km: float
) -> Weather:
    n = cal.days.size
    # AR(1) with lag-one correlation 0.4 and unit variance.
    ar = signal.lfilter([math.sqrt(1.0 - 0.16)], [1.0, -0.4], rng.standard_normal(n))
    years = cal.year - cal.year[0]
    annual_t = rng.standard_normal(years.max() + 1)[years]
    p_annual = rng.standard_normal(years.max() + 1)[years]
    fields = smooth_fields(rng, (2, n, *shape), cells_per_150km)
    return Weather(
        1.2 * ar + 0.4 * annual_t, rng.standard_normal(n), p_annual, fields[0], fields[1]
    )


def summer_weight(doy: Array) -> Array:
    return np.maximum(0.0, np.cos(2.0 * np.pi * (doy - 190.0) / 365.25))


def precip_shape(doy: Array, lat: Array, elevation: Array) -> Array:
    """Relative seasonal precipitation (time, ny, nx): winter maximum and monsoon."""
    d = doy[:, None, None]
    north = np.clip((lat - 35.5) / 7.0, 0.0, 1.0)
    uphill = smoothstep((elevation - 1500.0) / 2000.0)
    winter = (0.15 + 0.35 * north + 0.25 * uphill) * np.cos(2.0 * np.pi * (d - 20.0) / 365.25)
    monsoon = (0.4 + 0.9 * (1.0 - north)) * np.exp(-0.5 * ((d - 215.0) / 28.0) ** 2)
    june_dry = 0.45 * np.exp(-0.5 * ((d - 165.0) / 18.0) ** 2)
    shape = np.clip(1.0 + winter + monsoon - june_dry, 0.15, None)
    return shape / shape.mean(axis=0, keepdims=True)


class Forcing(NamedTuple):
    """Monthly forcing on the forcing grid, each (time, ny, nx)."""

    t_min: Array  # degC
    t_max: Array  # degC
    rad: Array  # MJ m-2 d-1
    vpd: Array  # hPa
    precip: Array  # mm d-1
    burned_area: Array  # fraction burned in the month


def meteorology(
    cal: Calendar,
    lat: Array,
    elevation: Array,
    mat: Array,
    map_: Array,
    w: Weather,
    first_year: int,
) -> Forcing:
    """Temperature, radiation, VPD and precipitation; lat is (ny, 1) or (ny, nx)."""
    d = cal.doy[:, None, None]
    summer = summer_weight(cal.doy)[:, None, None]
    wet = 0.6 * w.p_regional[:, None, None] + 0.8 * w.p_field
    trend = 0.03 * (cal.year - first_year)[:, None, None]
    t_mean = (
        mat
        + 13.0 * np.cos(2.0 * np.pi * (d - 200.0) / 365.25)
        + w.t_regional[:, None, None]
        + 0.5 * w.t_field
        + trend
        - 0.6 * summer * wet
    )
    dryness = np.clip((650.0 - map_) / 450.0, 0.0, 1.0)
    dtr = np.clip(12.0 + 4.0 * dryness + 2.0 * summer - 0.8 * wet, 6.0, 24.0)
    t_min, t_max = t_mean - dtr / 2.0, t_mean + dtr / 2.0
    precip = (
        map_
        / 365.25
        * precip_shape(cal.doy, lat, elevation)
        * np.exp(0.2 * w.p_annual[:, None, None] - 0.02)
        * np.exp(0.5 * wet - 0.125)
    )
    transmissivity = np.clip(0.74 + 0.02 * elevation / 1000.0 - 0.05 * wet, 0.4, 0.85)
    rad = toa_radiation(lat, d) * transmissivity
    depression = np.clip(1.5 + 7.0 * dryness + 3.0 * summer - 1.0 * wet, 0.5, None)
    vpd = 0.5 * (saturation_vapour_pressure(t_max) + saturation_vapour_pressure(t_min))
    vpd = np.maximum(vpd - saturation_vapour_pressure(t_min - depression), 0.1)
    zeros = np.zeros_like(t_min)
    return Forcing(t_min, t_max, rad, vpd, np.maximum(precip, 0.02), zeros)


def fire_hazard(cal: Calendar, w: Weather) -> Array:
    """Relative monthly fire hazard (time,): hot, dry months of May-October."""
    season = np.where(
        (cal.month >= 5) & (cal.month <= 10), np.exp(-0.5 * ((cal.doy - 200.0) / 40.0) ** 2), 0.0
    )
    return season * np.exp(-1.0 * w.p_regional + 0.5 * w.t_regional)


def burned_fraction(
    rng: np.random.Generator, hazard: Array, fuel: Array, rate_per_cell: float = 1.5e-4
) -> Array:
    """Monthly burned fraction (time, ny, nx) from Poisson fire events.

    Each event is centred on a fuel-weighted cell with a Gaussian footprint
    (radius ~1 cell, lognormal) and a peak burned fraction U(0.05, 0.5), scaled by
    the cell's woody fuel fraction; fractions below 0.001 are set to 0.
    """
    ny, nx = fuel.shape
    out = np.zeros((hazard.size, ny, nx))
    counts = rng.poisson(rate_per_cell * ny * nx * hazard)
    p = fuel.ravel() / fuel.sum() if fuel.sum() > 0 else np.full(ny * nx, 1.0 / (ny * nx))
    yy, xx = np.mgrid[0:ny, 0:nx]
    for t in np.flatnonzero(counts):
        for centre in rng.choice(ny * nx, size=counts[t], p=p):
            cy, cx = divmod(int(centre), nx)
            radius = math.exp(rng.normal(0.0, 0.5))
            peak = rng.uniform(0.05, 0.5)
            out[t] += peak * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * radius**2))
    out = np.clip(out * fuel, 0.0, 0.95)
    return np.where(out < 1e-3, 0.0, out)


# ---------------------------------------------------------------------------
# Predictors and the designed truth
# ---------------------------------------------------------------------------

PFTS: tuple[str, ...] = ("NF", "DBF", "EBF", "MF", "SH", "SAV", "GRA", "WET", "CRO", "NVG")
CLIM: tuple[str, ...] = ("MAT", "MAP", "elevation")
AGE: tuple[str, ...] = ("canopy_height", "forest_age")
PREDICTOR_GROUPS: dict[str, tuple[str, ...]] = {"PFT": PFTS, "CLIM": CLIM, "AGE": AGE, "SOIL": SOIL}
PREDICTORS: tuple[str, ...] = PFTS + CLIM + AGE + SOIL
PREDICTOR_UNITS: dict[str, str] = {
    **{p: "1" for p in PFTS},
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

#: IGBP class -> PFT group (water, class 0, is not a PFT).
IGBP_TO_PFT: dict[int, str] = {
    1: "NF",
    3: "NF",
    2: "EBF",
    4: "DBF",
    5: "MF",
    6: "SH",
    7: "SH",
    8: "SAV",
    9: "SAV",
    10: "GRA",
    11: "WET",
    12: "CRO",
    14: "CRO",
    13: "NVG",
    15: "NVG",
    16: "NVG",
}

#: Per-PFT values, in PFTS order (NF, DBF, EBF, MF, SH, SAV, GRA, WET, CRO, NVG).
PFT_VALUES: dict[str, tuple[float, ...]] = {
    #                       NF      DBF    EBF     MF      SH     SAV     GRA    WET     CRO    NVG
    "LCMA": (100, 45, 80, 70, 60, 80, 35, 40, 35, 50),
    "leaf_lifespan": (5.0, 1.06, 2.0, 2.0, 1.5, 2.0, 1.08, 1.08, 1.05, 1.5),
    "f_fol": (0.13, 0.21, 0.16, 0.17, 0.18, 0.12, 0.16, 0.2, 0.2, 0.16),
    "f_root": (0.35, 0.35, 0.35, 0.35, 0.45, 0.45, 0.70, 0.55, 0.55, 0.45),
    "flab": (0.06, 0.22, 0.06, 0.15, 0.10, 0.07, 0.20, 0.2, 0.2, 0.08),
    "onset_doy": (150, 140, 120, 145, 120, 125, 110, 125, 130, 120),
    "fall_doy": (290, 270, 290, 280, 270, 265, 250, 265, 245, 270),
    "clab_release_period": (40, 35, 40, 38, 45, 45, 45, 40, 35, 50),
    "leaf_fall_period": (60, 40, 60, 50, 60, 55, 50, 50, 40, 70),
    "canopy_efficiency": (16, 16, 18, 18, 16, 16, 14, 16, 18, 10),
    "uWUE": (7.5, 7.0, 7.0, 7.5, 7.0, 7.0, 6.5, 6.0, 6.0, 7.0),
    "field_capacity": (260, 230, 230, 240, 110, 130, 120, 300, 150, 80),
    "tor_root": (0.0015, 0.002, 0.0015, 0.0017, 0.002, 0.002, 0.003, 0.0025, 0.003, 0.002),
    "tor_litter": (0.004, 0.006, 0.005, 0.005, 0.004, 0.005, 0.007, 0.003, 0.008, 0.004),
    "foliar_cf": (0.7, 0.5, 0.6, 0.6, 0.8, 0.8, 0.9, 0.6, 0.8, 0.8),
    "ligneous_cf": (0.2, 0.15, 0.15, 0.18, 0.35, 0.3, 0.5, 0.2, 0.4, 0.3),
    "resilience": (0.3, 0.5, 0.4, 0.4, 0.6, 0.6, 0.8, 0.6, 0.7, 0.6),
    "winter_lai": (2.5, 0.1, 2.0, 1.3, 0.6, 0.8, 0.1, 0.2, 0.05, 0.05),
    "Clab": (80, 150, 80, 110, 60, 60, 40, 50, 40, 15),
    "Croot": (300, 250, 300, 280, 200, 200, 150, 250, 100, 30),
    "Clitter": (400, 300, 400, 350, 150, 200, 120, 400, 100, 30),
    "wood_base": (300, 300, 300, 300, 700, 900, 30, 100, 20, 10),
}

#: Parameters with no designed variation.
FIXED_VALUES: dict[str, float] = {
    "decomposition_rate": 0.0015,
    "tor_som": 5.5e-5,
    "IWUE": 25.0,
    "wilting_point_frac": 0.1,
    "dom_cf": 0.02,
    "lab_lifespan": 1.25,
    "sif_alpha": 16.0,
    "sif_beta_plus_three": 3.2,
    "p_fol": 0.002,
    "p_wood": 1e-5,
}

#: Designed influence: predictor group -> parameters that depend on it. SOIL is
#: the designed no-influence group. A parameter may depend on several groups.
INFLUENCE: dict[str, list[str]] = {
    "PFT": [
        "f_fol",
        "f_root",
        "leaf_lifespan",
        "tor_root",
        "tor_litter",
        "canopy_efficiency",
        "Bday",
        "flab",
        "clab_release_period",
        "Fday",
        "leaf_fall_period",
        "LCMA",
        "Clab",
        "Cfol",
        "Croot",
        "Cwood",
        "Clitter",
        "runoff_focal_point",
        "field_capacity",
        "Csom",
        "initial_water",
        "foliar_cf",
        "ligneous_cf",
        "resilience",
        "uWUE",
    ],
    "CLIM": [
        "f_gpp",
        "leaf_lifespan",
        "Q10",
        "canopy_efficiency",
        "Bday",
        "Fday",
        "Csom",
        "moisture_factor",
        "uWUE",
        "boese_r",
    ],
    "AGE": ["tor_wood", "Cwood"],
    "SOIL": [],
}

_MARGIN = 0.02  # fraction of each log-range kept clear of the spec bounds


def _inside(name: str, value: Array) -> Array:
    info = parameters.BY_NAME[name]
    ratio = (info.maximum / info.minimum) ** _MARGIN
    return np.clip(value, info.minimum * ratio, info.maximum / ratio)


def pft_weights(predictors: Predictors) -> Array:
    """PFT fractions (10, ...) renormalised to sum to 1; no cover at all counts as NVG."""
    f = np.stack([np.clip(np.asarray(predictors[p], np.float64), 0.0, None) for p in PFTS])
    total = f.sum(0)
    bare = np.zeros_like(f)
    bare[-1] = 1.0
    return np.where(total > 0, f / np.where(total > 0, total, 1.0), bare)


def _mix(weights: Array, name: str) -> Array:
    return np.tensordot(np.asarray(PFT_VALUES[name], np.float64), weights, axes=1)


def phenology_offset(lifespan: Array, period: Array) -> Array:
    """The CARDAMOM offset o(L, w) of spec 6.8, in days."""
    log_l1 = np.log(lifespan - 1.0)
    poly = sum(c * log_l1**j for j, c in enumerate(dalec.PHENOLOGY_POLY))
    return period / np.sqrt(2.0) * poly


def _phenology(w: Array, mat: Array, leaf_lifespan: Array) -> dict[str, Array]:
    """Phases placing peak labile release / leaf fall on target days of year."""
    release = _inside("clab_release_period", _mix(w, "clab_release_period"))
    fall = _inside("leaf_fall_period", _mix(w, "leaf_fall_period"))
    lab_life = np.full_like(mat, FIXED_VALUES["lab_lifespan"])
    onset = np.clip(_mix(w, "onset_doy") - 2.0 * (mat - 5.0), 60.0, 200.0)
    leaf_off = np.clip(_mix(w, "fall_doy") + 2.0 * (mat - 5.0), 200.0, 330.0)
    two_years = 2.0 * dalec.DAYS_PER_YEAR
    return {
        "clab_release_period": release,
        "leaf_fall_period": fall,
        "Bday": two_years + onset + phenology_offset(lab_life, release),
        "Fday": two_years + leaf_off + phenology_offset(leaf_lifespan, fall),
    }


def leaf_economy(map_: Array) -> Array:
    """Leaf-lifespan multiplier: longer-lived leaves where dry, shorter where wet.

    (1 + 1.2 arid) (1 - 0.5 wet) with arid = smoothstep((420 - MAP)/200) and
    wet = smoothstep((MAP - 600)/600). Without it DALEC's leaf-carbon feedback
    makes sparse dry canopies die back and wet ones grow without bound.
    """
    arid = smoothstep((420.0 - map_) / 200.0)
    wet = smoothstep((map_ - 600.0) / 600.0)
    return (1.0 + 1.2 * arid) * (1.0 - 0.5 * wet)


def _climate_parameters(w: Array, mat: Array, map_: Array, elevation: Array) -> dict[str, Array]:
    hump = np.exp(-0.5 * ((mat - 8.0) / 8.0) ** 2)
    return {
        "Q10": 0.032 + 0.03 * special.expit(-(mat - 4.0) / 2.5),
        "canopy_efficiency": _mix(w, "canopy_efficiency") * (0.45 + 0.55 * hump),
        "f_gpp": 0.35 + 0.15 * special.expit((mat - 6.0) / 3.0),
        "boese_r": 0.012 + 0.02 * smoothstep((map_ - 200.0) / 600.0),
        "uWUE": _mix(w, "uWUE") * (1.0 + 0.35 * np.tanh((450.0 - map_) / 250.0)),
        "moisture_factor": 0.15 + 0.6 * np.exp(-map_ / 400.0),
        "Csom": 2000.0
        + 6.0 * map_
        + 1.0 * np.maximum(elevation - 1200.0, 0.0)
        + 4000.0 * w[:4].sum(0),
    }


def _pft_parameters(w: Array) -> dict[str, Array]:
    names = (
        "LCMA",
        "leaf_lifespan",
        "f_fol",
        "f_root",
        "flab",
        "tor_root",
        "tor_litter",
        "foliar_cf",
        "ligneous_cf",
        "resilience",
        "Clab",
        "Croot",
        "Clitter",
    )
    out = {n: _mix(w, n) for n in names}
    capacity = _mix(w, "field_capacity")
    out.update(
        field_capacity=capacity, runoff_focal_point=10.0 * capacity, initial_water=0.8 * capacity
    )
    out["Cfol"] = _mix(w, "winter_lai") * out["LCMA"]
    return out


def _age_parameters(w: Array, height: Array, age: Array) -> dict[str, Array]:
    return {
        "tor_wood": 4e-5 + 3e-4 * np.exp(-np.maximum(age, 0.0) / 30.0),
        "Cwood": _mix(w, "wood_base") + 300.0 * np.maximum(height, 0.0) ** 1.25,
    }


def true_parameters(predictors: Predictors) -> dict[str, Array]:
    """The TRUE DALEC993 parameters as functions of the predictors (pure, vectorised).

    Args:
        predictors: columns by name (mapping, DataFrame or Dataset): the PFT
            fractions NF..NVG, MAT (degC), MAP (mm yr-1), elevation (m),
            canopy_height (m) and forest_age (yr), all broadcastable to one
            shape. Soil columns may be present and are NEVER read (SOIL has no
            influence by design); other extra columns are ignored.

    Returns:
        The 40 parameters of ``parameters.NAMES`` (float64 arrays of the
        broadcast shape), each strictly inside its spec bounds.
    """
    missing = [c for c in PFTS + CLIM + AGE if c not in predictors]
    if missing:
        raise ValueError(f"true_parameters: missing predictor column(s) {', '.join(missing)}")
    col = {c: np.asarray(predictors[c], np.float64) for c in CLIM + AGE}
    shape = np.broadcast_shapes(
        *(np.shape(predictors[p]) for p in PFTS), *(v.shape for v in col.values())
    )
    col = {c: np.broadcast_to(v, shape) for c, v in col.items()}
    w = np.broadcast_to(pft_weights(predictors), (len(PFTS), *shape))
    out: dict[str, Array] = {n: np.full(shape, v) for n, v in FIXED_VALUES.items()}
    out.update(_pft_parameters(w))
    out.update(_climate_parameters(w, col["MAT"], col["MAP"], col["elevation"]))
    out.update(_age_parameters(w, col["canopy_height"], col["forest_age"]))
    out["leaf_lifespan"] = _inside("leaf_lifespan", out["leaf_lifespan"] * leaf_economy(col["MAP"]))
    out.update(_phenology(w, col["MAT"], out["leaf_lifespan"]))
    return {n: _inside(n, out[n]) for n in parameters.NAMES}


# ---------------------------------------------------------------------------
# The landscape on its grids
# ---------------------------------------------------------------------------


class Landscape(NamedTuple):
    """Static fields of a twin region."""

    fine: LatLonGrid
    truth: LatLonGrid
    forcing_grid: LatLonGrid
    elevation: Array  # (fine) m
    igbp: Array  # (fine) uint8 class
    forest_age: Array  # (fine) yr
    canopy_height: Array  # (fine) m
    soil: dict[str, Array]  # (soil grid) each
    class_fraction: Array  # (17, landcover grid)
    mat_clim: Array  # (forcing grid) degC, climatology used to generate weather
    map_clim: Array  # (forcing grid) mm yr-1
    elevation_forcing: Array  # (forcing grid) m
    fuel: Array  # (forcing grid) woody fraction


def _km_per_px(grid: LatLonGrid) -> float:
    return grid.lat.step * 111.2


def build_landscape(config: TwinConfig) -> Landscape:
    """Terrain, climatology, land cover, forest structure and soil."""
    seed, truth = config.seed, truth_grid(config)
    fine = refine(truth, FINE_PER_TRUTH)
    km = _km_per_px(fine)
    elev = elevation_field(stream(seed, "elevation"), fine.shape, km)
    lat = fine.lat.centres[:, None]
    z_clim = smooth_fields(stream(seed, "climate"), (2, *fine.shape), 25.0 / km)
    mat, map_ = climatology(elev, lat, z_clim[0], z_clim[1])
    relief = elev - ndimage.gaussian_filter(elev, 8.0 / km, mode="nearest")
    igbp = landcover_classes(elev, mat, map_, relief, _cover_noise(seed, fine.shape, km))
    z_age = smooth_fields(stream(seed, "forest_age"), (2, *fine.shape), 6.0 / km)
    u = stream(seed, "forest_age_young").uniform(size=fine.shape)
    age, height = forest_structure(igbp, mat, map_, z_age[0], z_age[1], u)
    forcing = box_grid(config.box, PRODUCT_GRIDS["forcing"])
    return Landscape(
        fine=fine,
        truth=truth,
        forcing_grid=forcing,
        elevation=elev.astype(np.float32),
        igbp=igbp,
        forest_age=age,
        canopy_height=height,
        soil=_soil(config, fine, elev),
        class_fraction=class_fractions(
            igbp, fine, box_grid(config.box, PRODUCT_GRIDS["landcover"])
        ),
        mat_clim=area_mean(mat, fine, forcing),
        map_clim=area_mean(map_, fine, forcing),
        elevation_forcing=area_mean(elev, fine, forcing),
        fuel=woody_fraction(igbp, fine, forcing),
    )


def _cover_noise(seed: int, shape: tuple[int, int], km: float) -> dict[str, Array]:
    rng = stream(seed, "landcover")
    return {
        "niches": smooth_fields(rng, (len(NICHES), *shape), 4.0 / km),
        "crop": smooth_fields(rng, shape, 3.0 / km),
        "urban": smooth_fields(rng, shape, 2.0 / km),
        "lake": smooth_fields(rng, shape, 2.0 / km),
        "wet": smooth_fields(rng, shape, 2.0 / km),
    }


def _soil(config: TwinConfig, fine: LatLonGrid, elevation: Array) -> dict[str, Array]:
    grid = box_grid(config.box, PRODUCT_GRIDS["soil"])
    z = smooth_fields(stream(config.seed, "soil"), (5, *grid.shape), 2.0)
    return soil_texture(z, area_mean(elevation, fine, grid))


def class_fractions(igbp: Array, fine: LatLonGrid, target: LatLonGrid) -> Array:
    """Area fraction of each IGBP class 0-16 in each target cell, (17, ny, nx)."""
    return np.stack(
        [area_mean((igbp == k).astype(np.float64), fine, target, 0.0) for k in range(17)]
    )


def woody_fraction(igbp: Array, fine: LatLonGrid, target: LatLonGrid) -> Array:
    """Fraction of forest, shrub and savanna (fire fuel) in each target cell."""
    woody = np.isin(igbp, (1, 2, 3, 4, 5, 6, 7, 8, 9)).astype(np.float64)
    return np.nan_to_num(area_mean(woody, fine, target, 0.0))


def pft_fractions(class_fraction: Array) -> tuple[dict[str, Array], Array]:
    """PFT fractions of the land part of each cell and the land mask (water < 0.5)."""
    land_share = 1.0 - class_fraction[0]
    land = land_share > 0.5
    out = {p: np.zeros_like(land_share) for p in PFTS}
    for k, p in IGBP_TO_PFT.items():
        out[p] = out[p] + class_fraction[k]
    scale = np.where(land, 1.0 / np.where(land_share > 0, land_share, 1.0), np.nan)
    return {p: v * scale for p, v in out.items()}, land


# ---------------------------------------------------------------------------
# Forcing on the forcing grid, and its view on the truth grid
# ---------------------------------------------------------------------------


def build_forcing(config: TwinConfig, land: Landscape, cal: Calendar) -> Forcing:
    grid = land.forcing_grid
    w = weather(stream(config.seed, "weather"), cal, grid.shape, 150.0 / (grid.lat.step * 111.2))
    met = meteorology(
        cal,
        grid.lat.centres[:, None],
        land.elevation_forcing,
        land.mat_clim,
        land.map_clim,
        w,
        config.years[0],
    )
    burned = burned_fraction(stream(config.seed, "fire"), fire_hazard(cal, w), land.fuel)
    return met._replace(burned_area=burned)


def parent_index(child: Axis, parent: Axis) -> Array:
    """Index of the parent cell containing each child cell centre."""
    return np.floor((child.centres - parent.start) / parent.step + 1e-9).astype(int)


def to_truth_grid(field: Array, forcing_grid: LatLonGrid, truth: LatLonGrid) -> Array:
    """Forcing-grid field (..., fy, fx) seen by each truth cell (..., ty, tx)."""
    iy = parent_index(truth.lat, forcing_grid.lat)
    ix = parent_index(truth.lon, forcing_grid.lon)
    return field[..., iy[:, None], ix[None, :]]


def truth_predictors(
    land: Landscape, forcing: Forcing, config: TwinConfig
) -> tuple[dict[str, Array], Array]:
    """Predictor columns on the truth grid (NaN off land) and the land mask."""
    truth = land.truth
    frac = class_fractions(land.igbp, land.fine, truth)
    pfts, mask = pft_fractions(frac)
    t_mean = 0.5 * (forcing.t_min + forcing.t_max).mean(0)
    p_mean = forcing.precip.mean(0)
    soil_grid = box_grid(config.box, PRODUCT_GRIDS["soil"])
    cols = {
        **pfts,
        "MAT": to_truth_grid(t_mean, land.forcing_grid, truth),
        "MAP": to_truth_grid(p_mean, land.forcing_grid, truth) * 365.25,
        "elevation": area_mean(land.elevation.astype(np.float64), land.fine, truth),
        "canopy_height": area_mean(land.canopy_height.astype(np.float64), land.fine, truth, 0.0),
        "forest_age": area_mean(land.forest_age.astype(np.float64), land.fine, truth, 0.0),
        **{k: area_mean(v, soil_grid, truth, 0.0) for k, v in land.soil.items()},
    }
    return {k: np.where(mask, v, np.nan) for k, v in cols.items()}, mask


# ---------------------------------------------------------------------------
# The model run on the truth grid
# ---------------------------------------------------------------------------

TRUTH_RUN_OUTPUTS: tuple[str, ...] = (
    "lai",
    "gpp",
    "ET",
    "nee",
    "nbe",
    "SIF",
    "next_labile_pool",
    "next_foliar_pool",
    "next_root_pool",
    "next_wood_pool",
    "next_som_pool",
    "next_water_pool",
)


@functools.partial(jax.jit, static_argnames=("outputs",))
def _simulate(
    params: dict[str, jax.Array], met: dalec.Met, climate: dalec.Climate, outputs: tuple[str, ...]
):
    return dalec.simulate(params, met, climate, outputs=outputs).outputs


def run_truth(
    params: Mapping[str, Array],
    forcing: Mapping[str, Array],
    climate: Mapping[str, Array],
    cal: Calendar,
    co2: Array,
) -> dict[str, Array]:
    """DALEC993 in float32 on land cells.

    Args:
        params: 40 parameters, each (cells,).
        forcing: t_min, t_max, rad, vpd, precip, burned_area, each (time, cells).
        climate: lat, t_mean, p_mean, each (cells,).
        cal: the monthly calendar; co2 (time,) ppm.

    Returns:
        TRUTH_RUN_OUTPUTS, each (time, cells) float32.
    """
    f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
    column = lambda x: f32(np.asarray(x)[:, None])  # (time, 1) broadcasts over cells
    met = dalec.Met(
        days=column(cal.days),
        t_min=f32(forcing["t_min"]),
        t_max=f32(forcing["t_max"]),
        rad=f32(forcing["rad"]),
        co2=column(co2),
        doy=column(cal.doy),
        burned_area=f32(forcing["burned_area"]),
        vpd=f32(forcing["vpd"]),
        precip=f32(forcing["precip"]),
        delta_t=column(cal.ndays),
    )
    clim = dalec.Climate(*(f32(climate[k]) for k in dalec.Climate._fields))
    out = _simulate({k: f32(v) for k, v in params.items()}, met, clim, TRUTH_RUN_OUTPUTS)
    return {k: np.asarray(v) for k, v in out.items()}


class Truth(NamedTuple):
    """The noise-free truth on the truth grid (NaN off land)."""

    predictors: dict[str, Array]  # (ty, tx)
    parameters: dict[str, Array]  # (ty, tx)
    outputs: dict[str, Array]  # (time, ty, tx), TRUTH_RUN_OUTPUTS plus 'biomass', 'reco'
    land: Array  # (ty, tx) bool
    t_mean: Array  # (time, ty, tx) monthly mean temperature, degC


def simulate_truth(land: Landscape, forcing: Forcing, cal: Calendar, config: TwinConfig) -> Truth:
    predictors, mask = truth_predictors(land, forcing, config)
    params_grid = true_parameters(predictors)
    cell = lambda x: x[..., mask]
    at_truth = {
        k: to_truth_grid(v, land.forcing_grid, land.truth) for k, v in forcing._asdict().items()
    }
    lat = np.broadcast_to(land.truth.lat.centres[:, None], land.truth.shape)
    climate = {
        "lat": cell(lat),
        "t_mean": cell(predictors["MAT"]),
        "p_mean": cell(predictors["MAP"]) / 365.25,
    }
    flat = run_truth(
        {k: cell(v) for k, v in params_grid.items()},
        {k: cell(v) for k, v in at_truth.items()},
        climate,
        cal,
        co2_series(cal),
    )
    flat["biomass"] = sum(flat[f"next_{p}_pool"] for p in ("labile", "foliar", "root", "wood"))
    flat["reco"] = flat["gpp"] + flat["nee"]
    outputs = {k: _scatter(v, mask) for k, v in flat.items()}
    t_mean = 0.5 * (at_truth["t_min"] + at_truth["t_max"])
    return Truth(
        predictors,
        {k: np.where(mask, v, np.nan) for k, v in params_grid.items()},
        outputs,
        mask,
        t_mean,
    )


def _scatter(values: Array, mask: Array) -> Array:
    out = np.full((*values.shape[:-1], *mask.shape), np.nan, np.float32)
    out[..., mask] = values
    return out


# ---------------------------------------------------------------------------
# Observations
# ---------------------------------------------------------------------------


def add_noise(rng: np.random.Generator, x: Array, noise: Noise, nonnegative: bool = False) -> Array:
    """x exp(r e1 - r^2/2) + a e2 with e ~ N(0, 1): a mean-preserving lognormal
    relative error (relative sd ~ r) plus additive noise; NaN stays NaN."""
    e1 = rng.standard_normal(x.shape)
    e2 = rng.standard_normal(x.shape)
    r = noise.relative
    y = x * np.exp(r * e1 - 0.5 * r * r) + noise.absolute * e2
    return np.maximum(y, 0.0) if nonnegative else y


def random_gaps(rng: np.random.Generator, shape: tuple[int, ...], fraction: float) -> Array:
    """Boolean mask, True where an observation is dropped."""
    return rng.uniform(size=shape) < fraction


def annual_mean(x: Array, cal: Calendar) -> Array:
    """Mean of consecutive 12-month blocks (time, ...) -> (year, ...)."""
    return x.reshape(x.shape[0] // 12, 12, *x.shape[1:]).mean(1)


GRACE_GAP = (np.datetime64("2017-07-01"), np.datetime64("2018-06-01"))


def ewt_month_gaps(rng: np.random.Generator, cal: Calendar, fraction: float) -> Array:
    """(time,) True for missing GRACE months: random ones plus the mission gap."""
    mission = (cal.start >= GRACE_GAP[0]) & (cal.start < GRACE_GAP[1])
    return mission | random_gaps(rng, cal.start.shape, fraction)


class Observation(NamedTuple):
    grid: LatLonGrid
    values: Array  # (time, ny, nx) or (ny, nx), NaN = missing
    clean: Array  # noise-free, gap-free aggregate


def observe_gridded(
    truth: Truth, land: Landscape, cal: Calendar, config: TwinConfig
) -> dict[str, Observation]:
    """All gridded observation products."""
    seed, out = config.seed, {}
    fields = {
        "lai": truth.outputs["lai"],
        "sif": truth.outputs["SIF"],
        "et": truth.outputs["ET"],
        "nbe": truth.outputs["nbe"],
        "ewt": truth.outputs["next_water_pool"] - truth.outputs["next_water_pool"].mean(0),
        "biomass": annual_mean(truth.outputs["biomass"], cal),
        "som": truth.outputs["next_som_pool"].mean(0),
    }
    for name, field_ in fields.items():
        grid = box_grid(config.box, PRODUCT_GRIDS[name])
        clean = area_mean(
            field_.astype(np.float64), land.truth, grid, 0.0 if name == "nbe" else 0.5
        )
        rng = stream(seed, f"obs_{name}")
        values = add_noise(
            rng, clean, config.noise[name], nonnegative=name not in ("sif", "nbe", "ewt")
        )
        values = np.where(
            _gaps(name, rng, values.shape, truth, land, grid, cal, config), np.nan, values
        )
        out[name] = Observation(grid, values.astype(np.float32), clean.astype(np.float32))
    return out


def _gaps(
    name: str,
    rng: np.random.Generator,
    shape: tuple[int, ...],
    truth: Truth,
    land: Landscape,
    grid: LatLonGrid,
    cal: Calendar,
    config: TwinConfig,
) -> Array:
    if name == "ewt":
        return np.broadcast_to(ewt_month_gaps(rng, cal, config.gaps["ewt"])[:, None, None], shape)
    gaps = random_gaps(rng, shape, config.gaps[name])
    if name in ("lai", "sif"):
        gaps = gaps | (area_mean(truth.t_mean, land.truth, grid, 0.0) < config.snow_threshold)
    return gaps


class Sites(NamedTuple):
    """Eddy-covariance sites: indices into the truth grid and their records."""

    iy: Array
    ix: Array
    records: dict[str, Array]  # gpp, reco, et: (site, time)
    clean: dict[str, Array]


def choose_sites(
    rng: np.random.Generator, predictors: Mapping[str, Array], land: Array, n: int
) -> tuple[Array, Array]:
    """Site cells: cycle through PFTs by area, each a random cell dominated (>= 0.6) by it."""
    order = sorted(PFTS, key=lambda p: -np.nansum(predictors[p]))
    chosen: list[int] = []
    flat_land = land.ravel()
    for i in range(n * len(PFTS)):
        if len(chosen) == n:
            break
        share = np.nan_to_num(predictors[order[i % len(PFTS)]].ravel())
        candidates = np.flatnonzero(
            flat_land & (share >= 0.6) & ~np.isin(np.arange(share.size), chosen)
        )
        if candidates.size:
            chosen.append(int(rng.choice(candidates)))
    if len(chosen) < n:
        rest = np.setdiff1d(np.flatnonzero(flat_land), chosen)
        chosen.extend(
            int(c) for c in rng.choice(rest, size=min(n - len(chosen), rest.size), replace=False)
        )
    iy, ix = np.unravel_index(np.asarray(chosen, int), land.shape)
    return iy, ix


def observe_sites(truth: Truth, config: TwinConfig) -> Sites:
    rng = stream(config.seed, "ec_sites")
    iy, ix = choose_sites(rng, truth.predictors, truth.land, config.n_sites)
    clean = {
        k: truth.outputs[src][:, iy, ix].T.astype(np.float64)
        for k, src in (("gpp", "gpp"), ("reco", "reco"), ("et", "ET"))
    }
    records = {}
    for name, values in clean.items():
        noisy = add_noise(rng, values, config.noise[f"ec_{name}"], nonnegative=True)
        records[name] = np.where(
            random_gaps(rng, noisy.shape, config.gaps["ec"]), np.nan, noisy
        ).astype(np.float32)
    return Sites(iy, ix, records, {k: v.astype(np.float32) for k, v in clean.items()})


# ---------------------------------------------------------------------------
# Datasets (pure) and writers (I/O)
# ---------------------------------------------------------------------------

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
_TRUTH_OUTPUTS_LIMIT = 200e6  # bytes


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


def grid_coords(grid: LatLonGrid) -> dict[str, xr.Variable]:
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
    coords: dict[str, xr.Variable] = dict(grid_coords(grid))
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
        max(PFTS, key=lambda p: truth.predictors[p][y, x]) for y, x in zip(sites.iy, sites.ix)
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
    variables = {
        n: _var(
            ("lat", "lon"),
            truth.parameters[n].astype(np.float32),
            parameters.BY_NAME[n].units,
            parameters.BY_NAME[n].long_name,
        )
        for n in parameters.NAMES
    }
    extra = {"influence": "; ".join(f"{g}: {' '.join(p) or 'none'}" for g, p in INFLUENCE.items())}
    return _gridded(
        land.truth,
        variables,
        _attrs(config, "twin truth: DALEC993 parameters", "none (truth)", **extra),
    )


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
        {"year": cal.year, "month": cal.month, "co2_ppm": np.round(co2_series(cal), 3)}
    )


def write_netcdf(ds: xr.Dataset, path: Path) -> None:
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


def write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


# ---------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------


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
    cal = monthly_calendar(*config.years)
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
    _check_truth(truth)
    logger.info(
        "truth run on %d land cells x %d months (%.1f s)",
        truth.land.sum(),
        cal.days.size,
        time.perf_counter() - t0,
    )
    obs = observe_gridded(truth, land, cal, config)
    sites = observe_sites(truth, config)
    return Twin(config, cal, land, forcing, truth, obs, sites)


def _check_truth(truth: Truth) -> None:
    problem = parameters.out_of_bounds({k: v[truth.land] for k, v in truth.parameters.items()})
    if problem:
        raise RuntimeError(f"twin truth: {problem}")
    for name, values in truth.outputs.items():
        bad = int((~np.isfinite(values[:, truth.land])).sum())
        if bad:
            raise RuntimeError(
                f"twin truth: output '{name}' has {bad} non-finite values on land cells"
            )


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
        if isinstance(obj, pd.DataFrame):
            write_csv(obj, path)
        elif isinstance(obj, xr.DataArray):
            write_geotiff(obj, path)
        else:
            write_netcdf(obj, path)
        written[name] = path
    logger.info(
        "twin written to %s: %d files (%.1f s)", out_dir, len(written), time.perf_counter() - t0
    )
    return written
