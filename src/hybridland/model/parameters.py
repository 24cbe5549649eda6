"""The DALEC993 parameter table and the bounded real-to-physical transform.

The 40 parameters fall into three groups, each emitted by one head of the
spatialization network: 31 process parameters, 7 initial pools and 2 phenology
phases (spec sections 4 and 5). Group order is the order of the head's outputs.
It also defines the quantities derived from them that the analyses report.

The table is read without JAX (the config check uses it); only the transforms
to and from the network's unbounded reals import JAX, when called.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from jax import Array
    from jax.typing import ArrayLike

Group = Literal["process", "initial_pool", "phenology"]
GROUPS: tuple[Group, ...] = ("process", "initial_pool", "phenology")


class ParamInfo(NamedTuple):
    name: str
    group: Group
    minimum: float
    maximum: float
    units: str
    long_name: str


_P, _I, _F = "process", "initial_pool", "phenology"

# Canonical table order (spec 4.1, numbered 1-40).
TABLE: tuple[ParamInfo, ...] = tuple(
    ParamInfo(*row)
    for row in (
        ("decomposition_rate", _P, 1e-5, 0.01, "d-1", "litter-to-SOM transfer rate"),
        ("f_gpp", _P, 0.2, 0.8, "1", "fraction of GPP respired autotrophically"),
        ("f_fol", _P, 0.01, 0.5, "1", "fraction of NPP to foliage"),
        ("f_root", _P, 0.01, 1.0, "1", "fraction of the remainder to roots"),
        ("leaf_lifespan", _P, 1.001, 8.0, "yr", "leaf lifespan"),
        ("tor_wood", _P, 2.5e-5, 0.001, "d-1", "wood turnover rate"),
        ("tor_root", _P, 1e-4, 0.01, "d-1", "root turnover rate"),
        ("tor_litter", _P, 1e-4, 0.01, "d-1", "litter respiration rate"),
        ("tor_som", _P, 1e-7, 0.001, "d-1", "SOM respiration rate"),
        ("Q10", _P, 0.018, 0.08, "degC-1", "exponential temperature sensitivity"),
        ("canopy_efficiency", _P, 5.0, 50.0, "1", "ACM canopy efficiency"),
        ("Bday", _F, 365.25, 1461.0, "d", "phase of labile release"),
        ("flab", _P, 0.01, 0.5, "1", "fraction of the remainder to labile"),
        ("clab_release_period", _P, 30.4375, 100.0, "d", "duration of labile release"),
        ("Fday", _F, 365.25, 1461.0, "d", "phase of leaf fall"),
        ("leaf_fall_period", _P, 30.4375, 150.0, "d", "duration of leaf fall"),
        ("LCMA", _P, 5.0, 200.0, "gC m-2", "leaf carbon mass per leaf area"),
        ("Clab", _I, 1.0, 2000.0, "gC m-2", "initial labile carbon"),
        ("Cfol", _I, 1.0, 2000.0, "gC m-2", "initial foliar carbon"),
        ("Croot", _I, 1.0, 2000.0, "gC m-2", "initial root carbon"),
        ("Cwood", _I, 1.0, 100000.0, "gC m-2", "initial wood carbon"),
        ("Clitter", _I, 1.0, 2000.0, "gC m-2", "initial litter carbon"),
        ("Csom", _I, 1.0, 200000.0, "gC m-2", "initial soil organic carbon"),
        ("IWUE", _P, 10.0, 50.0, "gC hPa kg-1", "intrinsic water-use efficiency (unused)"),
        ("runoff_focal_point", _P, 1.0, 100000.0, "mm", "runoff shape parameter"),
        ("field_capacity", _P, 1.0, 10000.0, "mm", "field capacity"),
        ("initial_water", _I, 1.0, 10000.0, "mm", "initial plant-accessible water"),
        ("foliar_cf", _P, 0.01, 1.0, "1", "combustion completeness of foliage"),
        ("ligneous_cf", _P, 0.01, 1.0, "1", "combustion completeness of labile, root, wood"),
        ("dom_cf", _P, 0.01, 1.0, "1", "combustion completeness of SOM"),
        ("resilience", _P, 0.01, 1.0, "1", "surviving fraction of burned live carbon"),
        ("lab_lifespan", _P, 1.001, 8.0, "yr", "labile lifespan"),
        ("moisture_factor", _P, 0.01, 1.0, "1", "moisture sensitivity of respiration"),
        ("uWUE", _P, 0.5, 30.0, "gC hPa0.5 kg-1", "underlying water-use efficiency"),
        ("boese_r", _P, 0.01, 0.3, "kg MJ-1", "radiation coefficient of ET"),
        ("wilting_point_frac", _P, 0.01, 0.5, "1", "wilting point / field capacity"),
        ("sif_alpha", _P, 3.0, 35.0, "gC m-2 d-1", "slope of GPP against SIF"),
        ("sif_beta_plus_three", _P, 1.0, 9.0, "gC m-2 d-1", "intercept of GPP against SIF + 3"),
        ("p_fol", _P, 1e-4, 0.01, "m2 gC-1", "VOD per unit foliar carbon"),
        ("p_wood", _P, 1e-6, 8e-5, "m2 gC-1", "VOD per unit wood carbon"),
    )
)

NAMES: tuple[str, ...] = tuple(p.name for p in TABLE)
BY_NAME: dict[str, ParamInfo] = {p.name: p for p in TABLE}


def group_names(group: Group) -> tuple[str, ...]:
    """Names of one group, in the order its network head emits them."""
    return tuple(p.name for p in TABLE if p.group == group)


INITIAL_POOLS = group_names("initial_pool")
POOLS = ("labile", "foliar", "root", "wood", "litter", "som", "water")
# Pool bounds used inside the step equal the initial-pool parameter ranges (spec 2).
POOL_MIN = tuple(BY_NAME[n].minimum for n in INITIAL_POOLS)
POOL_MAX = tuple(BY_NAME[n].maximum for n in INITIAL_POOLS)


def named_bounds(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) of the named parameters as float32, in the order given."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; known: {list(NAMES)}")
    lo = np.array([BY_NAME[n].minimum for n in names], np.float32)
    hi = np.array([BY_NAME[n].maximum for n in names], np.float32)
    return lo, hi


def bounds(group: Group) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) of a group as float32, the precision the published table is stored in."""
    return named_bounds(group_names(group))


def _bounds_and_ratio(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounds and max/min, the ratio formed in float32 as the published code does (spec 4.2)."""
    lo, hi = named_bounds(names)
    return lo, hi, hi / lo


def to_physical_named(x: ArrayLike, names: Sequence[str]) -> Array:
    """Map unbounded reals (..., len(names)) into the named parameters' physical ranges.

    theta = a * (b / a) ** (arctan(x) / pi + 1/2), evaluated literally in the
    working precision of ``x``. The final clip only catches rounding past a
    bound for huge |x|; it never moves an interior value.
    """
    import jax.numpy as jnp

    x = jnp.asarray(x)
    lo, hi, ratio = (jnp.asarray(v, x.dtype) for v in _bounds_and_ratio(names))
    s = jnp.arctan(x) / jnp.pi + 0.5
    return jnp.clip(lo * ratio**s, lo, hi)


def to_physical(x: ArrayLike, group: Group) -> Array:
    """Map unbounded reals (..., n_group) into the group's physical ranges (see
    :func:`to_physical_named`)."""
    return to_physical_named(x, group_names(group))


def to_real(theta: ArrayLike, group: Group) -> Array:
    """Inverse of :func:`to_physical`; values must lie strictly inside the bounds."""
    import jax.numpy as jnp

    theta = jnp.asarray(theta)
    lo, _, ratio = (jnp.asarray(v, theta.dtype) for v in _bounds_and_ratio(group_names(group)))
    s = jnp.log(theta / lo) / jnp.log(ratio)
    return jnp.tan(jnp.pi * (s - 0.5))


def merge_groups(stacked: Mapping[Group, ArrayLike]) -> dict[str, Array]:
    """One array per parameter name from one (..., n_group) array per group."""
    import jax.numpy as jnp

    out: dict[str, Array] = {}
    for g in GROUPS:
        arr = jnp.asarray(stacked[g])
        out.update({n: arr[..., i] for i, n in enumerate(group_names(g))})
    return out


def out_of_bounds(values: Mapping[str, ArrayLike]) -> str | None:
    """Describe the first parameter outside its range (or missing/NaN), else None."""
    missing = [n for n in NAMES if n not in values]
    if missing:
        return f"missing parameters: {', '.join(missing)}"
    unknown = sorted(set(values) - set(NAMES))
    if unknown:
        return f"unknown parameters: {', '.join(unknown)} (expected the names of spec 4.1)"
    for p in TABLE:
        v = np.asarray(values[p.name], np.float64)
        # A bound in float64 or rounded to float32 (the model's precision) is within bounds.
        low = min(p.minimum, float(np.float32(p.minimum)))
        high = max(p.maximum, float(np.float32(p.maximum)))
        bad = ~((v >= low) & (v <= high))
        if bad.any():
            idx = np.unravel_index(int(np.flatnonzero(bad)[0]), v.shape) if v.ndim else ()
            return (
                f"parameter '{p.name}' = {float(v[idx])!r} at index {tuple(int(i) for i in idx)} "
                f"is outside its bounds [{p.minimum:g}, {p.maximum:g}] {p.units}"
            )
    return None


# ---- derived quantities (spec 13) and the key parameters of the reference study

# Parameters mapped as GeoTIFFs by the evaluation.
KEY_PARAMETERS = ("canopy_efficiency", "f_gpp", "Q10", "f_root", "leaf_lifespan", "LCMA")
# The same six as the reference study's SHAP reports them: Q10 conventional, and the
# root allocation as a fraction of the whole GPP (derived from f_root) instead of f_root.
KEY_QUANTITIES = ("canopy_efficiency", "f_gpp", "Q10", "root_allocation", "leaf_lifespan", "LCMA")
DAYS_PER_YEAR = 365.25
# Phases that DALEC reads only modulo a period (spec 6.8: the phenology rate takes them
# through sin^2(pi (t - phase) / 365.25)): members a whole period apart are the same model,
# so the ensemble statistics of these parameters are circular.
PERIODS: dict[str, float] = {"Bday": DAYS_PER_YEAR, "Fday": DAYS_PER_YEAR}


def wrapped(difference: Any, period: float) -> Any:
    """``difference`` moved by whole periods into [-period / 2, period / 2)."""
    return (np.asarray(difference) + period / 2.0) % period - period / 2.0


def aligned(name: str, values: Any, reference: Any) -> np.ndarray:
    """``values`` moved by whole periods to lie nearest ``reference`` (a phase), else as given."""
    values = np.asarray(values, np.float64)
    period = PERIODS.get(name)
    if period is None:
        return values
    return np.asarray(reference, np.float64) + wrapped(values - reference, period)


def unwrapped(name: str, values: Any, axis: int = 0) -> np.ndarray:
    """Members along ``axis`` moved by whole periods to lie nearest the first member: a phase's
    values made comparable on a line (anything else as given)."""
    values = np.asarray(values, np.float64)
    if name not in PERIODS:
        return values
    return aligned(name, values, np.take(values, [0], axis=axis))


def ensemble_mean(name: str, values: Any, axis: int = 0) -> np.ndarray:
    """Mean over ``axis`` (members); a phase is averaged :func:`unwrapped`, so it stays in the
    first member's period (a map stays continuous), moved a period inwards where that would
    leave the bounds."""
    mean = unwrapped(name, values, axis).mean(axis=axis)
    if name not in PERIODS:
        return mean
    info, period = BY_NAME[name], PERIODS[name]
    return np.where(
        mean < info.minimum, mean + period, np.where(mean > info.maximum, mean - period, mean)
    )


def ensemble_std(name: str, values: Any, axis: int = 0) -> np.ndarray:
    """Population standard deviation over ``axis`` (members), of a phase :func:`unwrapped`."""
    return unwrapped(name, values, axis).std(axis=axis)


def _allocation(p: Mapping[str, Any]) -> dict[str, Any]:
    """Whole-GPP allocation fractions (spec 13), with f_lab where the released script had f_fol."""
    autotrophic = p["f_gpp"]
    foliar = (1.0 - autotrophic) * p["f_fol"]
    labile = (1.0 - autotrophic - foliar) * p["flab"]
    root = (1.0 - autotrophic - foliar - labile) * p["f_root"]
    wood = 1.0 - autotrophic - foliar - labile - root
    return {
        "autotrophic": autotrophic,
        "foliar": foliar,
        "labile": labile,
        "root": root,
        "wood": wood,
    }


def _allocation_fraction(kind: str, p: Mapping[str, Any], xp: Any) -> Any:
    return _allocation(p)[kind]


DERIVED: dict[str, Callable[[Mapping[str, Any], Any], Any]] = {
    "Q10": lambda p, xp: xp.exp(10.0 * p["Q10"]),  # conventional Q10 from theta_T
    **{
        f"{kind}_allocation": functools.partial(_allocation_fraction, kind)
        for kind in ("autotrophic", "foliar", "labile", "root", "wood")
    },
    "Bday_doy": lambda p, xp: p["Bday"] % DAYS_PER_YEAR,
    "Fday_doy": lambda p, xp: p["Fday"] % DAYS_PER_YEAR,
}


def check_quantities(names: Sequence[str]) -> None:
    """Raise for names that are neither a spec-4.1 parameter nor a derived quantity."""
    unknown = [n for n in names if n not in DERIVED and n not in BY_NAME]
    if unknown or not names:
        known = sorted(set(NAMES) | set(DERIVED))
        raise ValueError(f"unknown quantities {unknown or list(names)} to explain; known: {known}")


def quantities(params: Mapping[str, Any], names: Sequence[str], xp: Any = np) -> Any:
    """Stack the named quantities, (..., k). ``Q10`` is the conventional exp(10 theta_T).

    Names: any parameter of spec 4.1 (its physical value), ``Q10`` (e^{10 theta_T}),
    ``{autotrophic,foliar,labile,root,wood}_allocation`` (fractions of GPP, spec 13),
    ``Bday_doy``/``Fday_doy`` (phases modulo 365.25 d). ``xp``: numpy or jax.numpy.
    """
    return xp.stack([DERIVED[n](params, xp) if n in DERIVED else params[n] for n in names], axis=-1)
