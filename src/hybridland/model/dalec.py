"""DALEC993 (default water stress) as a pure JAX step scanned over time.

Equations and their order follow ``docs/spec/dalec993.md`` section 6. Arrays are
time-major: forcing is (time, *cells), parameters and pools are (*cells), and
every function broadcasts over the cell axes, so one code path serves a
single site, a patch or many patches.

Everything that does not depend on the model state (phenology factors, the
heterotrophic modifier, every turnover fraction, the state-free parts of ACM)
is computed for all steps at once before the scan; the scan body holds only
the state-dependent arithmetic. Outputs are stacked only when asked for, and
time totals can be accumulated in the carry instead of stacked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from hybridland.model.parameters import INITIAL_POOLS, NAMES, POOL_MAX, POOL_MIN

Params = Mapping[str, Array]

# ACM constants (Williams et al. 1997), spec 6.3.
D1, D2 = 0.0156935, 0.0453194
GAMMA, K_ACM = 4.22273, 208.868
B2, C1, A2, C2 = 0.37836, 7.19298, 0.011136, 2.1001
EB, PSI_D, HYDRAULIC_RESISTANCE = 0.789798, -2.0, 1.0
# CARDAMOM phenology offset polynomial, constant term first (spec 6.8).
PHENOLOGY_POLY = (
    -0.188459767342504,
    0.126972018064287,
    -0.020836027517787,
    -0.005437736864888,
    0.000901865258885,
    0.000332730053021,
    0.000023599784710,
)
DAYS_PER_YEAR = 365.25

OUTPUTS: tuple[str, ...] = (
    "lai",
    "gpp",
    "ET",
    "temperate",
    "respiration_auto",
    "leaf_production",
    "labile_production",
    "root_production",
    "wood_production",
    "lff",
    "lrf",
    "labile_release",
    "leaf_litter",
    "wood_litter",
    "root_litter",
    "respiration_hetero_litter",
    "respiration_hetero_som",
    "litter_to_som",
    "runoff",
    "labile_fire_combust",
    "foliar_fire_combust",
    "root_fire_combust",
    "wood_fire_combust",
    "litter_fire_combust",
    "som_fire_combust",
    "labile_fire_transfer",
    "foliar_fire_transfer",
    "root_fire_transfer",
    "wood_fire_transfer",
    "litter_fire_transfer",
    "total_fire_combust",
    "nee",
    "nbe",
    "next_labile_pool",
    "next_foliar_pool",
    "next_root_pool",
    "next_wood_pool",
    "next_litter_pool",
    "next_som_pool",
    "next_water_pool",
    "beta",
    "SIF",
    "violation",
    "vod",
)
"""The 44 step outputs of the published model, in its order (spec 7)."""

DIAGNOSTICS: tuple[str, ...] = ("clip_carbon", "clip_water")
"""Mass that bound enforcement adds without a flux accounting for it (rates per day).

clip_carbon: when foliage hits its lower bound, leaf litter is set to 1.0 instead of
the mass-consistent residual (spec 6.11 b2); the difference is carbon created.
clip_water: when runoff turns negative, ET is recomputed but runoff is kept (spec
6.11 g4); the change in water then exceeds P - ET - runoff by this amount.
"""

UNITS: dict[str, str] = {
    "lai": "m2 m-2",
    "ET": "mm d-1",
    "temperate": "1",
    "lff": "d-1",
    "lrf": "d-1",
    "runoff": "mm d-1",
    "next_water_pool": "mm",
    "beta": "1",
    "SIF": "SIF units",
    "violation": "mm d-1",
    "vod": "1",
    "clip_water": "mm d-1",
    **{f"next_{p}_pool": "gC m-2" for p in ("labile", "foliar", "root", "wood", "litter", "som")},
}
"""Units of outputs; every other output is a carbon flux in gC m-2 d-1."""


def output_units(name: str) -> str:
    return UNITS.get(name, "gC m-2 d-1")


class Pools(NamedTuple):
    """The seven-pool state (spec 2): carbon in gC m-2, water in mm."""

    labile: Array
    foliar: Array
    root: Array
    wood: Array
    litter: Array
    som: Array
    water: Array


class Met(NamedTuple):
    """Time-varying forcing, each (time, *cells); units as spec 3.1."""

    days: Array  # d since 2000-01-01
    t_min: Array  # degC
    t_max: Array  # degC
    rad: Array  # MJ m-2 d-1
    co2: Array  # ppm
    doy: Array  # d
    burned_area: Array  # fraction burned during the step
    vpd: Array  # hPa
    precip: Array  # mm d-1
    delta_t: Array  # d


class Climate(NamedTuple):
    """Static per-cell forcing, each (*cells)."""

    lat: Array  # degrees north
    t_mean: Array  # degC, long-term mean daily temperature
    p_mean: Array  # mm d-1, long-term mean precipitation


class Drivers(NamedTuple):
    """State-independent quantities of every step, each (time, *cells)."""

    delta_t: Array
    gc: Array
    p_per_lai: Array
    co2: Array
    rad: Array
    daylength_factor: Array
    et_per_gpp: Array
    et_radiation: Array
    precip: Array
    burned_area: Array
    temperate: Array
    lff: Array
    lrf: Array
    phi_labile: Array
    phi_foliar: Array
    phi_wood: Array
    phi_root: Array
    phi_litter: Array
    phi_som: Array
    phi_decomposition: Array


def turnover_factor(k: Array, delta_t: Array) -> Array:
    """Discrete daily loss rate (1 - (1 - k)^dt) / dt, literal form (spec 6, 8)."""
    return (1.0 - (1.0 - k) ** delta_t) / delta_t


def day_length(lat: Array, doy: Array) -> Array:
    """Day length in hours from latitude (deg) and day of year (spec 6.3)."""
    declination = -23.4 * (jnp.pi / 180.0) * jnp.cos(2.0 * jnp.pi * (doy + 10.0) / 365.0)
    m = jnp.tan(lat * jnp.pi / 180.0) * jnp.tan(declination)
    inside = jnp.arccos(-jnp.clip(m, -1.0, 1.0)) * (24.0 / jnp.pi)
    return jnp.where(m >= 1.0, 24.0, jnp.where(m <= -1.0, 0.0, inside))


def phenology_factor(days: Array, lifespan: Array, period: Array, phase: Array) -> Array:
    """CARDAMOM-style leaf-fall / labile-release rate g(t) in d-1 (spec 6.8)."""
    log_l1 = jnp.log(lifespan - 1.0)
    h = 0.5 * (jnp.log(lifespan) - log_l1)
    w = period / jnp.sqrt(2.0)
    offset = w * sum(c * log_l1**j for j, c in enumerate(PHENOLOGY_POLY))
    sf = DAYS_PER_YEAR / jnp.pi
    z = sf / w * jnp.sin((days - phase + offset) / sf)
    return 2.0 / jnp.sqrt(jnp.pi) * h / w * jnp.exp(-(z**2))


def heterotrophic_modifier(met: Met, climate: Climate, q10: Array, moisture: Array) -> Array:
    """Temperature and moisture modifier Theta of heterotrophic rates (spec 6.6)."""
    t_anomaly = 0.5 * (met.t_max + met.t_min) - climate.t_mean
    return jnp.exp(q10 * t_anomaly) * (1.0 + moisture * (met.precip / climate.p_mean - 1.0))


def drivers(params: Params, met: Met, climate: Climate) -> Drivers:
    """All state-independent terms for every step, vectorised over time and cells."""
    dt = met.delta_t
    gc = jnp.abs(PSI_D) ** EB / (B2 * HYDRAULIC_RESISTANCE + 0.5 * (met.t_max - met.t_min))
    theta = heterotrophic_modifier(met, climate, params["Q10"], params["moisture_factor"])
    lff = phenology_factor(
        met.days, params["leaf_lifespan"], params["leaf_fall_period"], params["Fday"]
    )
    lrf = phenology_factor(
        met.days, params["lab_lifespan"], params["clab_release_period"], params["Bday"]
    )
    return Drivers(
        delta_t=dt,
        gc=gc,
        p_per_lai=params["canopy_efficiency"] * jnp.exp(A2 * met.t_max) / gc,
        co2=met.co2,
        rad=met.rad,
        daylength_factor=D1 * day_length(climate.lat, met.doy) + D2,
        et_per_gpp=jnp.sqrt(met.vpd) / params["uWUE"],
        et_radiation=params["boese_r"] * met.rad,
        precip=met.precip,
        burned_area=met.burned_area,
        temperate=theta,
        lff=lff,
        lrf=lrf,
        phi_labile=turnover_factor(lrf, dt),
        phi_foliar=turnover_factor(lff, dt),
        phi_wood=turnover_factor(params["tor_wood"], dt),
        phi_root=turnover_factor(params["tor_root"], dt),
        phi_litter=turnover_factor(theta * params["tor_litter"], dt),
        phi_som=turnover_factor(theta * params["tor_som"], dt),
        phi_decomposition=turnover_factor(theta * params["decomposition_rate"], dt),
    )


def acm_gpp(lai: Array, beta: Array, d: Drivers) -> Array:
    """Aggregated Canopy Model GPP in gC m-2 d-1 (spec 6.3)."""
    p = lai * d.p_per_lai
    q = GAMMA - K_ACM
    b = d.co2 + q - p
    ci = 0.5 * (b + jnp.sqrt(b * b - 4.0 * (d.co2 * q - p * GAMMA)))
    e0 = C1 * lai**2 / (C2 + lai**2)
    pd = d.gc * (d.co2 - ci)
    energy = e0 * d.rad
    return beta * energy * pd / (energy + pd) * d.daylength_factor


def _bounded(new: Array, old: Array, i: int, inflow: Array, outflow: Array, dt: Array):
    """Clamp a pool into its bounds; a clamped pool's outflow becomes the residual."""
    lo, hi = POOL_MIN[i], POOL_MAX[i]
    fired = (new < lo) | (new > hi)
    clamped = jnp.where(new < lo, lo, jnp.where(new > hi, hi, new))
    return clamped, jnp.where(fired, inflow - (clamped - old) / dt, outflow)


def default_beta(water: Array, params: Params) -> Array:
    """The default water-stress factor from start-of-step water (spec 6.2)."""
    w_fc = params["field_capacity"]
    w_wp = params["wilting_point_frac"] * w_fc
    return jnp.clip((water - w_wp) / (w_fc - w_wp), 0.0, 1.0)


class Hooks(NamedTuple):
    """Injection points inside the step, each fed the step's slice ``x`` of ``hook_inputs``.

    beta(water, params, x) -> beta replaces the default water stress (spec 6.2).
    gpp_et(lai, water, params, x) -> (GPP, ET) replaces ACM and the ET form together;
    the carbon and water balances downstream are DALEC's own.
    """

    beta: Callable[[Array, Params, Array], Array] | None = None
    gpp_et: Callable[[Array, Array, Params, Array], tuple[Array, Array]] | None = None


NO_HOOKS = Hooks()


def step(
    params: Params, pools: Pools, d: Drivers, hooks: Hooks = NO_HOOKS, x: Array | None = None
) -> tuple[Pools, dict[str, Array]]:
    """One DALEC993 step (spec 6.1-6.14). Returns the next state and every output.

    ``hooks`` (with ``x``, this step's hook inputs) replace the water stress or GPP and ET.
    """
    p, dt = params, d.delta_t
    lai = pools.foliar / p["LCMA"]
    beta = default_beta(pools.water, p) if hooks.beta is None else hooks.beta(pools.water, p, x)
    if hooks.gpp_et is None:
        gpp = acm_gpp(lai, beta, d)
        et = gpp * d.et_per_gpp + d.et_radiation
    else:
        gpp, et = hooks.gpp_et(lai, pools.water, p, x)

    # Sequential allocation (6.7).
    ra = p["f_gpp"] * gpp
    a_fol = (gpp - ra) * p["f_fol"]
    a_lab = (gpp - ra - a_fol) * p["flab"]
    a_roo = (gpp - ra - a_fol - a_lab) * p["f_root"]
    a_woo = gpp - ra - a_fol - a_lab - a_roo

    # Turnover from start-of-step pools (6.9).
    r_lab = pools.labile * d.phi_labile
    phi_fol = pools.foliar * d.phi_foliar
    phi_woo = pools.wood * d.phi_wood
    phi_roo = pools.root * d.phi_root
    rh_lit = pools.litter * d.phi_litter
    rh_som = pools.som * d.phi_som
    d_ls = pools.litter * d.phi_decomposition

    # Runoff from start-of-step water (6.10).
    w, w_r = pools.water, p["runoff_focal_point"]
    runoff = jnp.where(w > 0.5 * w_r, (w - 0.25 * w_r) / dt, w * w / (w_r * dt))

    # Pool updates with bound enforcement, in the source's order (6.11).
    lab, r_lab = _bounded(pools.labile + (a_lab - r_lab) * dt, pools.labile, 0, a_lab, r_lab, dt)

    fol = pools.foliar + (a_fol - phi_fol + r_lab) * dt
    fol_low, fol_high = fol < POOL_MIN[1], fol > POOL_MAX[1]
    fol = jnp.where(fol_low, POOL_MIN[1], jnp.where(fol_high, POOL_MAX[1], fol))
    fol_residual = a_fol + r_lab - (fol - pools.foliar) / dt
    # Quirk b2: at the lower bound leaf litter becomes the bound value, not the residual.
    clip_carbon = jnp.where(fol_low, POOL_MIN[1] - fol_residual, 0.0)
    phi_fol = jnp.where(fol_low, POOL_MIN[1], jnp.where(fol_high, fol_residual, phi_fol))

    roo, phi_roo = _bounded(pools.root + (a_roo - phi_roo) * dt, pools.root, 2, a_roo, phi_roo, dt)
    woo, phi_woo = _bounded(pools.wood + (a_woo - phi_woo) * dt, pools.wood, 3, a_woo, phi_woo, dt)

    lit, rh_lit, d_ls = _litter_update(pools.litter, phi_fol + phi_roo, rh_lit, d_ls, dt)
    som, rh_som = _bounded(
        pools.som + (d_ls - rh_som + phi_woo) * dt, pools.som, 5, d_ls + phi_woo, rh_som, dt
    )
    water, runoff, et, violation, clip_water = _water_update(w, runoff, et, d.precip, dt)

    fire = _fire(p, Pools(lab, fol, roo, woo, lit, som, water), d.burned_area, dt)
    nxt = fire.pools
    nee = -gpp + ra + rh_lit + rh_som
    outputs = {
        "lai": lai,
        "gpp": gpp,
        "ET": et,
        "temperate": d.temperate,
        "respiration_auto": ra,
        "leaf_production": a_fol,
        "labile_production": a_lab,
        "root_production": a_roo,
        "wood_production": a_woo,
        "lff": d.lff,
        "lrf": d.lrf,
        "labile_release": r_lab,
        "leaf_litter": phi_fol,
        "wood_litter": phi_woo,
        "root_litter": phi_roo,
        "respiration_hetero_litter": rh_lit,
        "respiration_hetero_som": rh_som,
        "litter_to_som": d_ls,
        "runoff": runoff,
        **fire.fluxes,
        "nee": nee,
        "nbe": nee + fire.fluxes["total_fire_combust"],
        **{f"next_{name}_pool": v for name, v in zip(_POOL_NAMES, nxt)},
        "beta": beta,
        "SIF": (gpp - (p["sif_beta_plus_three"] - 3.0)) / p["sif_alpha"],
        "violation": violation,
        "vod": p["p_fol"] * nxt.foliar + p["p_wood"] * nxt.wood,
        "clip_carbon": clip_carbon,
        "clip_water": clip_water,
    }
    return nxt, outputs


_POOL_NAMES = Pools._fields


def _litter_update(old: Array, inflow: Array, rh: Array, d_ls: Array, dt: Array):
    """Litter pool with its two independent losses (spec 6.11 e1-e4)."""
    lo, hi = POOL_MIN[4], POOL_MAX[4]
    new = old + (inflow - rh - d_ls) * dt
    low = new < lo
    new = jnp.where(low, lo, new)
    d_ls = jnp.where(low, inflow - rh - (new - old) / dt, d_ls)
    negative = d_ls < 0.0
    d_ls = jnp.where(negative, 0.0, d_ls)
    rh = jnp.where(negative, inflow - (new - old) / dt, rh)
    high = new > hi
    new = jnp.where(high, hi, new)
    d_ls = jnp.where(high, inflow - rh - (new - old) / dt, d_ls)
    return new, rh, d_ls


def _water_update(old: Array, runoff: Array, et: Array, precip: Array, dt: Array):
    """Water bucket (spec 6.11 g1-g5); returns water, runoff, ET, violation, clip."""
    lo, hi = POOL_MIN[6], POOL_MAX[6]
    new = old - runoff * dt + precip * dt - et * dt
    # g2 is a clamp written as arithmetic in the source; it differs from a select
    # only for non-finite water, which then stays non-finite.
    s = (new >= lo).astype(new.dtype)
    new = s * new + (1.0 - s) * lo
    runoff = jnp.where(s == 0.0, precip - et - (new - old) / dt, runoff)
    violation = jnp.maximum(-0.01 * runoff, 0.0)
    negative = runoff < 0.0
    et = jnp.where(negative, precip - (new - old) / dt, et)
    clip_water = jnp.where(negative, runoff, 0.0)
    high = new > hi
    new = jnp.where(high, hi, new)
    runoff = jnp.where(high, precip - et - (new - old) / dt, runoff)
    return new, runoff, et, violation, clip_water


class _Fire(NamedTuple):
    pools: Pools
    fluxes: dict[str, Array]


def _fire(p: Params, pools: Pools, burned: Array, dt: Array) -> _Fire:
    """Combustion and mortality transfer on the clipped pools; no re-clip (6.12)."""
    kf, kg, ks, rho = p["foliar_cf"], p["ligneous_cf"], p["dom_cf"], p["resilience"]
    kbar = 0.5 * (kf + kg)
    rate = burned / dt
    dead = 1.0 - rho
    e = {
        "labile": pools.labile * rate * kg,
        "foliar": pools.foliar * rate * kf,
        "root": pools.root * rate * kg,
        "wood": pools.wood * rate * kg,
        "litter": pools.litter * rate * kbar,
        "som": pools.som * rate * ks,
    }
    m = {
        "labile": pools.labile * rate * (1.0 - kg) * dead,
        "foliar": pools.foliar * rate * (1.0 - kf) * dead,
        "root": pools.root * rate * (1.0 - kg) * dead,
        "wood": pools.wood * rate * (1.0 - kg) * dead,
        "litter": pools.litter * rate * (1.0 - kbar) * dead,
    }
    new = Pools(
        labile=pools.labile - (e["labile"] + m["labile"]) * dt,
        foliar=pools.foliar - (e["foliar"] + m["foliar"]) * dt,
        root=pools.root - (e["root"] + m["root"]) * dt,
        wood=pools.wood - (e["wood"] + m["wood"]) * dt,
        litter=pools.litter
        + (m["labile"] + m["foliar"] + m["root"] - e["litter"] - m["litter"]) * dt,
        som=pools.som + (m["wood"] + m["litter"] - e["som"]) * dt,
        water=pools.water,
    )
    fluxes = {f"{k}_fire_combust": v for k, v in e.items()}
    fluxes |= {f"{k}_fire_transfer": v for k, v in m.items()}
    fluxes["total_fire_combust"] = sum(e.values())
    return _Fire(new, fluxes)


def initial_pools(params: Params) -> Pools:
    """The state entering the first step, from the seven initial-pool parameters."""
    return Pools(*(params[n] for n in INITIAL_POOLS))


class Run(NamedTuple):
    """Result of :func:`simulate`."""

    outputs: dict[str, Array]  # each (time, *cells)
    totals: dict[str, Array]  # each (*cells): sum over steps of a rate
    final: Pools


def simulate(
    params: Params,
    met: Met,
    climate: Climate,
    *,
    outputs: Sequence[str] = OUTPUTS,
    totals: Sequence[str] = (),
    dynamic: Params | None = None,
    hooks: Hooks = NO_HOOKS,
    hook_inputs: Array | None = None,
) -> Run:
    """Run DALEC993 over all steps of ``met``.

    Args:
        params: the 40 physical parameters by name, each (*cells).
        met: time-varying forcing, each (time, *cells).
        climate: static forcing, each (*cells).
        outputs: names of outputs to stack over time (any of OUTPUTS, DIAGNOSTICS).
        totals: names of outputs to sum over time in the scan carry instead.
        dynamic: time-varying parameters, each (time, *cells), that replace those of
            ``params`` step by step (not the initial pools).
        hooks: replacements of the water stress or of GPP and ET (see :class:`Hooks`).
        hook_inputs: what the hooks read at each step, (time, *cells, k).
    """
    unknown = sorted((set(outputs) | set(totals)) - set(OUTPUTS + DIAGNOSTICS))
    if unknown:
        raise ValueError(f"unknown DALEC outputs {unknown}; known: {OUTPUTS + DIAGNOSTICS}")
    dynamic = dict(dynamic or {})
    bad = sorted(set(dynamic) - (set(NAMES) - set(INITIAL_POOLS)))
    if bad:
        raise ValueError(f"time-varying parameters {bad} must be non-initial-pool parameters")
    drv = drivers({**params, **dynamic}, met, climate)
    cells = jnp.broadcast_shapes(
        drv.gc.shape[1:], drv.phi_litter.shape[1:], drv.p_per_lai.shape[1:]
    )
    pools0 = Pools(
        *(jnp.broadcast_to(x, cells).astype(drv.gc.dtype) for x in initial_pools(params))
    )
    sums0 = {name: jnp.zeros(cells, drv.gc.dtype) for name in totals}

    def body(carry, xs):
        pools, sums = carry
        d, dyn, x = xs
        nxt, out = step({**params, **dyn}, pools, d, hooks, x)
        sums = {name: sums[name] + out[name] for name in totals}
        return (nxt, sums), {name: out[name] for name in outputs}

    (final, sums), stacked = jax.lax.scan(body, (pools0, sums0), (drv, dynamic, hook_inputs))
    return Run(stacked, sums, final)
