"""The twin's static landscape: terrain, climatology, land cover, forest structure, soil.

All fields are statistical, generated on the box's own grids (docs/twin.md):
elevation, land cover, forest age and canopy height on the ~1 km fine grid, soil on
its 0.05-degree grid, and their aggregates on the forcing and land-cover grids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from scipy import ndimage, special

from hybridland.contract import PFT
from hybridland.data.landcover import PFT_FROM_IGBP
from hybridland.data.twin.config import FINE_PER_TRUTH, TwinConfig
from hybridland.data.twin.fields import smooth_fields, smoothstep, stream
from hybridland.data.twin.grids import (
    PRODUCT_GRIDS,
    LatLonGrid,
    box_grid,
    covered_area_mean,
    refine,
    truth_grid,
)

Array = np.ndarray


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
        mat_clim=covered_area_mean(mat, fine, forcing),
        map_clim=covered_area_mean(map_, fine, forcing),
        elevation_forcing=covered_area_mean(elev, fine, forcing),
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
    return soil_texture(z, covered_area_mean(elevation, fine, grid))


def class_fractions(igbp: Array, fine: LatLonGrid, target: LatLonGrid) -> Array:
    """Area fraction of each IGBP class 0-16 in each target cell, (17, ny, nx)."""
    return np.stack(
        [covered_area_mean((igbp == k).astype(np.float64), fine, target, 0.0) for k in range(17)]
    )


def woody_fraction(igbp: Array, fine: LatLonGrid, target: LatLonGrid) -> Array:
    """Fraction of forest, shrub and savanna (fire fuel) in each target cell."""
    woody = np.isin(igbp, (1, 2, 3, 4, 5, 6, 7, 8, 9)).astype(np.float64)
    return np.nan_to_num(covered_area_mean(woody, fine, target, 0.0))


def pft_fractions(class_fraction: Array) -> tuple[dict[str, Array], Array]:
    """PFT fractions of the land part of each cell and the land mask (water < 0.5)."""
    land_share = 1.0 - class_fraction[0]
    land = land_share > 0.5
    out = {p: np.zeros_like(land_share) for p in PFT}
    for p, classes in PFT_FROM_IGBP.items():
        for k in classes:
            out[p] = out[p] + class_fraction[k]
    scale = np.where(land, 1.0 / np.where(land_share > 0, land_share, 1.0), np.nan)
    return {p: v * scale for p, v in out.items()}, land
