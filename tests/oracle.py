"""A literal, sequential, scalar float64 transcription of spec section 6.

It serves the tests as an independent oracle for what the visible reference
cases do not reach: daily steps, upper pool bounds, the root and SOM lower
bounds and the litter-to-SOM sign fix. It is written as the spec reads, one
statement per line, with no restructuring, and counts which branches fire.
"""

from __future__ import annotations

import math
from collections import Counter

POLY = (
    -0.188459767342504,
    0.126972018064287,
    -0.020836027517787,
    -0.005437736864888,
    0.000901865258885,
    0.000332730053021,
    0.000023599784710,
)
PMIN = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
PMAX = (2000.0, 2000.0, 2000.0, 100000.0, 2000.0, 200000.0, 10000.0)


def phi(k, dt):
    return (1.0 - (1.0 - k) ** dt) / dt


def pheno(t, lifespan, period, phase):
    h = 0.5 * (math.log(lifespan) - math.log(lifespan - 1.0))
    w = period / math.sqrt(2.0)
    o = w * sum(c * math.log(lifespan - 1.0) ** j for j, c in enumerate(POLY))
    sf = 365.25 / math.pi
    return (
        2.0
        / math.sqrt(math.pi)
        * h
        / w
        * math.exp(-((sf / w * math.sin((t - phase + o) / sf)) ** 2))
    )


def step(p, x, m, hits: Counter):
    """p: dict of parameters, x: list of 7 pools, m: dict of met values. Returns (next, outputs)."""
    dt = m["delta_t"]
    clab, cfol, croo, cwoo, clit, csom, w = x
    lai = cfol / p["LCMA"]
    wfc = p["field_capacity"]
    wwp = p["wilting_point_frac"] * wfc
    beta = min(1.0, max(0.0, (w - wwp) / (wfc - wwp)))
    gc = abs(-2.0) ** 0.789798 / (0.37836 * 1.0 + 0.5 * (m["t_max"] - m["t_min"]))
    pp = lai * p["canopy_efficiency"] * math.exp(0.011136 * m["t_max"]) / gc
    q = 4.22273 - 208.868
    ca = m["co2"]
    ci = 0.5 * (ca + q - pp + math.sqrt((ca + q - pp) ** 2 - 4.0 * (ca * q - pp * 4.22273)))
    e0 = 7.19298 * lai**2 / (2.1001 + lai**2)
    dec = -23.4 * math.pi / 180.0 * math.cos(2.0 * math.pi * (m["doy"] + 10.0) / 365.0)
    mm = math.tan(m["lat"] * math.pi / 180.0) * math.tan(dec)
    if mm >= 1.0:
        daylen = 24.0
    elif mm <= -1.0:
        daylen = 0.0
    else:
        daylen = 24.0 / math.pi * math.acos(-mm)
    pd = gc * (ca - ci)
    j = e0 * m["rad"] * pd / (e0 * m["rad"] + pd)
    gpp = beta * j * (0.0156935 * daylen + 0.0453194)
    et = gpp * math.sqrt(m["vpd"]) / p["uWUE"] + p["boese_r"] * m["rad"]
    sif = gpp / p["sif_alpha"] - (p["sif_beta_plus_three"] - 3.0) / p["sif_alpha"]
    theta = math.exp(p["Q10"] * (0.5 * (m["t_max"] + m["t_min"]) - m["t_mean"])) * (
        1.0 + p["moisture_factor"] * (m["precip"] / m["p_mean"] - 1.0)
    )
    ra = p["f_gpp"] * gpp
    afol = (gpp - ra) * p["f_fol"]
    alab = (gpp - ra - afol) * p["flab"]
    aroo = (gpp - ra - afol - alab) * p["f_root"]
    awoo = gpp - ra - afol - alab - aroo
    lff = pheno(m["days"], p["leaf_lifespan"], p["leaf_fall_period"], p["Fday"])
    lrf = pheno(m["days"], p["lab_lifespan"], p["clab_release_period"], p["Bday"])
    rlab = clab * phi(lrf, dt)
    ffol = cfol * phi(lff, dt)
    fwoo = cwoo * phi(p["tor_wood"], dt)
    froo = croo * phi(p["tor_root"], dt)
    rhlit = clit * phi(theta * p["tor_litter"], dt)
    rhsom = csom * phi(theta * p["tor_som"], dt)
    dls = clit * phi(theta * p["decomposition_rate"], dt)
    wr = p["runoff_focal_point"]
    if w > wr / 2.0:
        hits["runoff_linear"] += 1
        runoff = (w - wr / 4.0) / dt
    else:
        runoff = w * w / (wr * dt)

    nlab = clab + (alab - rlab) * dt
    if nlab < PMIN[0]:
        hits["labile_low"] += 1
        nlab = PMIN[0]
        rlab = alab - (nlab - clab) / dt
    if nlab > PMAX[0]:
        hits["labile_high"] += 1
        nlab = PMAX[0]
        rlab = alab - (nlab - clab) / dt

    nfol = cfol + (afol - ffol + rlab) * dt
    if nfol < PMIN[1]:
        hits["foliar_low"] += 1
        nfol = PMIN[1]
        ffol = PMIN[1]
    if nfol > PMAX[1]:
        hits["foliar_high"] += 1
        nfol = PMAX[1]
        ffol = afol + rlab - (nfol - cfol) / dt

    nroo = croo + (aroo - froo) * dt
    if nroo < PMIN[2]:
        hits["root_low"] += 1
        nroo = PMIN[2]
        froo = aroo - (nroo - croo) / dt
    if nroo > PMAX[2]:
        hits["root_high"] += 1
        nroo = PMAX[2]
        froo = aroo - (nroo - croo) / dt

    nwoo = cwoo + (awoo - fwoo) * dt
    if nwoo < PMIN[3]:
        hits["wood_low"] += 1
        nwoo = PMIN[3]
        fwoo = awoo - (nwoo - cwoo) / dt
    if nwoo > PMAX[3]:
        hits["wood_high"] += 1
        nwoo = PMAX[3]
        fwoo = awoo - (nwoo - cwoo) / dt

    nlit = clit + (ffol + froo - rhlit - dls) * dt
    if nlit < PMIN[4]:
        hits["litter_low"] += 1
        nlit = PMIN[4]
        dls = ffol + froo - rhlit - (nlit - clit) / dt
    if dls < 0.0:
        hits["litter_to_som_negative"] += 1
        dls = 0.0
        rhlit = ffol + froo - (nlit - clit) / dt
    if nlit > PMAX[4]:
        hits["litter_high"] += 1
        nlit = PMAX[4]
        dls = ffol + froo - rhlit - (nlit - clit) / dt

    nsom = csom + (dls - rhsom + fwoo) * dt
    if nsom < PMIN[5]:
        hits["som_low"] += 1
        nsom = PMIN[5]
        rhsom = dls + fwoo - (nsom - csom) / dt
    if nsom > PMAX[5]:
        hits["som_high"] += 1
        nsom = PMAX[5]
        rhsom = dls + fwoo - (nsom - csom) / dt

    nw = w - runoff * dt + m["precip"] * dt - et * dt
    if nw < PMIN[6]:
        hits["water_low"] += 1
        nw = PMIN[6]
        runoff = m["precip"] - et - (nw - w) / dt
    violation = max(-0.01 * runoff, 0.0)
    if runoff < 0.0:
        hits["runoff_negative"] += 1
        et = m["precip"] - (nw - w) / dt
    if nw > PMAX[6]:
        hits["water_high"] += 1
        nw = PMAX[6]
        runoff = m["precip"] - et - (nw - w) / dt

    b = m["burned_area"]
    kf, kg, ks, rho = p["foliar_cf"], p["ligneous_cf"], p["dom_cf"], p["resilience"]
    kbar = (kf + kg) / 2.0
    elab = nlab * b * kg / dt
    efol = nfol * b * kf / dt
    eroo = nroo * b * kg / dt
    ewoo = nwoo * b * kg / dt
    elit = nlit * b * kbar / dt
    esom = nsom * b * ks / dt
    mlab = nlab * b * (1.0 - kg) * (1.0 - rho) / dt
    mfol = nfol * b * (1.0 - kf) * (1.0 - rho) / dt
    mroo = nroo * b * (1.0 - kg) * (1.0 - rho) / dt
    mwoo = nwoo * b * (1.0 - kg) * (1.0 - rho) / dt
    mlit = nlit * b * (1.0 - kbar) * (1.0 - rho) / dt
    if b > 0:
        hits["fire"] += 1
    nlab2 = nlab - (elab + mlab) * dt
    nfol2 = nfol - (efol + mfol) * dt
    nroo2 = nroo - (eroo + mroo) * dt
    nwoo2 = nwoo - (ewoo + mwoo) * dt
    nlit2 = nlit + (mlab + mfol + mroo - elit - mlit) * dt
    nsom2 = nsom + (mwoo + mlit - esom) * dt
    etot = elab + efol + eroo + ewoo + elit + esom
    nee = -gpp + ra + rhlit + rhsom
    out = {
        "lai": lai,
        "gpp": gpp,
        "ET": et,
        "temperate": theta,
        "respiration_auto": ra,
        "leaf_production": afol,
        "labile_production": alab,
        "root_production": aroo,
        "wood_production": awoo,
        "lff": lff,
        "lrf": lrf,
        "labile_release": rlab,
        "leaf_litter": ffol,
        "wood_litter": fwoo,
        "root_litter": froo,
        "respiration_hetero_litter": rhlit,
        "respiration_hetero_som": rhsom,
        "litter_to_som": dls,
        "runoff": runoff,
        "labile_fire_combust": elab,
        "foliar_fire_combust": efol,
        "root_fire_combust": eroo,
        "wood_fire_combust": ewoo,
        "litter_fire_combust": elit,
        "som_fire_combust": esom,
        "labile_fire_transfer": mlab,
        "foliar_fire_transfer": mfol,
        "root_fire_transfer": mroo,
        "wood_fire_transfer": mwoo,
        "litter_fire_transfer": mlit,
        "total_fire_combust": etot,
        "nee": nee,
        "nbe": nee + etot,
        "next_labile_pool": nlab2,
        "next_foliar_pool": nfol2,
        "next_root_pool": nroo2,
        "next_wood_pool": nwoo2,
        "next_litter_pool": nlit2,
        "next_som_pool": nsom2,
        "next_water_pool": nw,
        "beta": beta,
        "SIF": sif,
        "violation": violation,
        "vod": p["p_fol"] * nfol2 + p["p_wood"] * nwoo2,
    }
    return [nlab2, nfol2, nroo2, nwoo2, nlit2, nsom2, nw], out


def run(p: dict, met: list[dict], hits: Counter) -> dict[str, list[float]]:
    """Scan :func:`step` over a list of met dicts, from the initial-pool parameters."""
    names = ("Clab", "Cfol", "Croot", "Cwood", "Clitter", "Csom", "initial_water")
    x = [p[n] for n in names]
    series: dict[str, list[float]] = {}
    for m in met:
        x, out = step(p, x, m, hits)
        for k, v in out.items():
            series.setdefault(k, []).append(v)
    return series
