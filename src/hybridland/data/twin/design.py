"""The designed truth: TRUE DALEC993 parameters as functions of the predictors.

:func:`true_parameters` is pure and vectorised; :data:`INFLUENCE` lists which
predictor group moves which parameter (SOIL moves none), and docs/twin.md gives
every formula. :class:`Overrides` (the config's ``twin.overrides``) replace a
parameter's designed dependence by a seeded random function of one group, or a
constant; :func:`drivers` records which groups drive each parameter.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
from scipy import special

from hybridland.contract import AGE, CLIM, PFT, SOIL
from hybridland.data.twin.fields import smoothstep, stream
from hybridland.model import dalec, parameters

Array = np.ndarray
Predictors = Mapping[str, Any]  # column name -> array-like (dict, DataFrame, Dataset)

#: Per-PFT values, in PFT order (NF, DBF, EBF, MF, SH, SAV, GRA, WET, CRO, NVG).
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
    f = np.stack([np.clip(np.asarray(predictors[p], np.float64), 0.0, None) for p in PFT])
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


class Overrides(NamedTuple):
    """Configured truth: parameters whose designed dependence is replaced.

    Attributes:
        groups: parameter -> predictor group (PFT, CLIM, SOIL, AGE) whose smooth
            random function it becomes, or ``none`` for a constant.
        span: fraction of the parameter's log-range the random function spans
            (at most; its centre is the designed value at :data:`REFERENCE_PREDICTORS`).
        seed: seed of the random functions (one stream per parameter).
    """

    groups: Mapping[str, str] = {}
    span: float = 0.25
    seed: int = 1


OVERRIDE_GROUPS: tuple[str, ...] = ("PFT", "CLIM", "SOIL", "AGE", "none")
GROUP_COLUMNS: dict[str, tuple[str, ...]] = {"PFT": PFT, "CLIM": CLIM, "AGE": AGE, "SOIL": SOIL}

#: Centre and scale (predictor units) that make each non-PFT predictor of order one
#: for the overrides' random functions; PFT shares enter as they are.
PREDICTOR_SCALES: dict[str, tuple[float, float]] = {
    "MAT": (5.0, 5.0),
    "MAP": (500.0, 300.0),
    "elevation": (2500.0, 700.0),
    "canopy_height": (10.0, 10.0),
    "forest_age": (80.0, 60.0),
    "BULK_DEN": (1.4, 0.15),
    "SAND": (40.0, 15.0),
    "SILT": (35.0, 10.0),
    "CLAY": (25.0, 10.0),
    "GRAVEL": (15.0, 10.0),
}

#: The predictor row whose designed parameters centre every override.
REFERENCE_PREDICTORS: dict[str, float] = {
    **{p: 1.0 / len(PFT) for p in PFT},
    "MAT": 5.0,
    "MAP": 500.0,
    "elevation": 2500.0,
    "canopy_height": 10.0,
    "forest_age": 80.0,
}

_N_FEATURES = 12  # random cosine features per overridden parameter


def drivers(overrides: Overrides | None = None) -> dict[str, tuple[str, ...]]:
    """Parameter -> predictor groups that drive it (in INFLUENCE order; () when constant)."""
    groups = {} if overrides is None else overrides.groups
    out = {n: tuple(g for g, names in INFLUENCE.items() if n in names) for n in parameters.NAMES}
    out.update({n: () if g == "none" else (g,) for n, g in groups.items()})
    return out


def influence(overrides: Overrides | None = None) -> dict[str, list[str]]:
    """Predictor group -> parameters it drives (INFLUENCE when nothing is overridden)."""
    by_parameter = drivers(overrides)
    out = {}
    for group, designed in INFLUENCE.items():
        rest = [n for n in parameters.NAMES if n not in designed]
        out[group] = [n for n in designed + rest if group in by_parameter[n]]
    return out


def _standardised(group: str, predictors: Predictors, shape: tuple[int, ...]) -> Array:
    """The group's predictors as (columns, *shape), each of order one."""
    if group == "PFT":
        return np.broadcast_to(pft_weights(predictors), (len(PFT), *shape))
    return np.stack(
        [
            np.broadcast_to(
                (np.asarray(predictors[c], np.float64) - PREDICTOR_SCALES[c][0])
                / PREDICTOR_SCALES[c][1],
                shape,
            )
            for c in GROUP_COLUMNS[group]
        ]
    )


def random_function(z: Array, rng: np.random.Generator) -> Array:
    """A smooth random function of ``z`` (columns, ...) with values in (-1, 1).

    tanh of a sum of random cosine features, scaled to unit variance over
    standard-normal inputs (random Fourier features of a Gaussian kernel).
    """
    w = rng.standard_normal((_N_FEATURES, z.shape[0]))
    phase = rng.uniform(0.0, 2.0 * np.pi, _N_FEATURES)
    weight = rng.standard_normal(_N_FEATURES) * np.sqrt(2.0 / _N_FEATURES)
    features = np.cos(np.tensordot(w, z, axes=1) + phase.reshape(-1, *([1] * (z.ndim - 1))))
    return np.tanh(np.tensordot(weight, features, axes=1))


@functools.cache
def reference_parameters() -> dict[str, float]:
    """The designed parameters at :data:`REFERENCE_PREDICTORS`."""
    row = {k: np.array([v]) for k, v in REFERENCE_PREDICTORS.items()}
    return {n: float(v[0]) for n, v in true_parameters(row).items()}


def overridden(
    name: str, group: str, predictors: Predictors, shape: tuple[int, ...], overrides: Overrides
) -> Array:
    """One parameter as a seeded random function of ``group`` (or constant for ``none``)."""
    centre = np.log(reference_parameters()[name])
    if group == "none":
        return np.full(shape, np.exp(centre))
    info = parameters.BY_NAME[name]
    half_width = 0.5 * overrides.span * np.log(info.maximum / info.minimum)
    rng = stream(overrides.seed, f"override_{name}")
    return np.exp(
        centre + half_width * random_function(_standardised(group, predictors, shape), rng)
    )


def true_parameters(predictors: Predictors, overrides: Overrides | None = None) -> dict[str, Array]:
    """The TRUE DALEC993 parameters as functions of the predictors (pure, vectorised).

    Args:
        predictors: columns by name (mapping, DataFrame or Dataset): the PFT
            fractions NF..NVG, MAT (degC), MAP (mm yr-1), elevation (m),
            canopy_height (m) and forest_age (yr), all broadcastable to one
            shape. Soil columns are read only when an override names SOIL
            (SOIL has no influence by design); other extra columns are ignored.
        overrides: parameters whose designed dependence is replaced (none:
            the designed truth).

    Returns:
        The 40 parameters of ``parameters.NAMES`` (float64 arrays of the
        broadcast shape), each strictly inside its spec bounds.
    """
    groups = {} if overrides is None else dict(overrides.groups)
    needed = PFT + CLIM + AGE + (SOIL if "SOIL" in groups.values() else ())
    missing = [c for c in needed if c not in predictors]
    if missing:
        raise ValueError(f"true_parameters: missing predictor column(s) {', '.join(missing)}")
    col = {c: np.asarray(predictors[c], np.float64) for c in CLIM + AGE}
    shape = np.broadcast_shapes(
        *(np.shape(predictors[p]) for p in PFT), *(v.shape for v in col.values())
    )
    col = {c: np.broadcast_to(v, shape) for c, v in col.items()}
    w = np.broadcast_to(pft_weights(predictors), (len(PFT), *shape))
    out: dict[str, Array] = {n: np.full(shape, v) for n, v in FIXED_VALUES.items()}
    out.update(_pft_parameters(w))
    out.update(_climate_parameters(w, col["MAT"], col["MAP"], col["elevation"]))
    out.update(_age_parameters(w, col["canopy_height"], col["forest_age"]))
    out["leaf_lifespan"] = _inside("leaf_lifespan", out["leaf_lifespan"] * leaf_economy(col["MAP"]))
    out.update(_phenology(w, col["MAT"], out["leaf_lifespan"]))
    for name, group in groups.items():
        out[name] = overridden(name, group, predictors, shape, overrides)
    return {n: _inside(n, out[n]) for n in parameters.NAMES}
