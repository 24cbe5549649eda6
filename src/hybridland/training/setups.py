"""The factorial setups: which predictor columns each one feeds the network.

A setup is a set of predictor groups, named canonically by joining its groups
in the order PFT, CLIM, SOIL, AGE with ``+`` (``PFT+CLIM+SOIL+AGE``). The empty
set is ``CONTROL``: one white-noise column. ``LATLON`` feeds latitude and
longitude only. Columns enter the network in the order PFT, CLIM, AGE, SOIL.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence

import numpy as np
import xarray as xr

from hybridland.contract import PREDICTOR_GROUPS

NAME_ORDER = ("PFT", "CLIM", "SOIL", "AGE")
COLUMN_ORDER = ("PFT", "CLIM", "AGE", "SOIL")
CONTROL = "CONTROL"
LATLON = "LATLON"


def setup_name(groups: Sequence[str]) -> str:
    """Canonical name of a set of groups."""
    unknown = sorted(set(groups) - set(NAME_ORDER))
    if unknown:
        raise ValueError(f"unknown predictor groups {unknown}; known: {list(NAME_ORDER)}")
    return "+".join(g for g in NAME_ORDER if g in groups) or CONTROL


def factorial(groups: Sequence[str]) -> list[str]:
    """All subsets of ``groups`` (CONTROL first, the full set last)."""
    ordered = [g for g in NAME_ORDER if g in groups]
    subsets = itertools.chain.from_iterable(
        itertools.combinations(ordered, k) for k in range(len(ordered) + 1)
    )
    return [setup_name(s) for s in subsets]


def dynamic_setup(kind: str, static_setup: str) -> str:
    """The setup name of a FLUXNET16 dynamic hybrid: ``<static setup>+dyn`` for the LSTM that
    sets parameters monthly, else the kind itself (``beta-nn``, ``gppet-nn``)."""
    return f"{static_setup}+dyn" if kind == "dyn" else kind


def groups_of(setup: str) -> tuple[str, ...]:
    """Groups of a factorial setup (empty for CONTROL)."""
    if setup in (CONTROL, LATLON):
        return ()
    groups = tuple(setup.split("+"))
    if setup_name(groups) != setup:
        raise ValueError(f"setup {setup!r} is not canonical; write it as {setup_name(groups)!r}")
    return groups


def columns(setup: str) -> tuple[str, ...]:
    """Predictor columns of a setup, in network input order."""
    if setup == CONTROL:
        return ("null",)
    if setup == LATLON:
        return ("lat_deg", "lon_deg")
    groups = groups_of(setup)
    return tuple(c for g in COLUMN_ORDER if g in groups for c in PREDICTOR_GROUPS[g])


# One row per predictor group in a setup's group matrix (CONTROL: its noise column).
GROUP_ROWS = (*NAME_ORDER, LATLON, CONTROL)


def column_groups(setup: str) -> tuple[str, ...]:
    """The group (a GROUP_ROWS name) of each of the setup's predictor columns, in input order."""
    if setup in (CONTROL, LATLON):
        return (setup,) * len(columns(setup))
    groups = groups_of(setup)
    return tuple(g for g in COLUMN_ORDER if g in groups for _ in PREDICTOR_GROUPS[g])


def group_matrix(setup: str, width: int) -> np.ndarray:
    """(len(GROUP_ROWS), width) float32, 1 where input column j (of ``width``, the columns past
    the setup's being zero padding) belongs to the row's group."""
    owners = column_groups(setup)
    if width < len(owners):
        raise ValueError(f"setup {setup} has {len(owners)} columns, more than width {width}")
    matrix = np.zeros((len(GROUP_ROWS), width), np.float32)
    for j, group in enumerate(owners):
        matrix[GROUP_ROWS.index(group), j] = 1.0
    return matrix


def setup_seed(seed: int, setup: str) -> int:
    """A seed per setup that does not depend on the order of setups in the config."""
    return (seed * 1_000_003 + zlib.crc32(setup.encode())) % 2**31


def feature_table(driver: xr.Dataset, setup: str, seed: int) -> np.ndarray:
    """Raw (unstandardised) predictor columns of every driver cell, (cell, n)."""
    if setup == CONTROL:
        rng = np.random.default_rng(setup_seed(seed, "null"))
        return rng.normal(size=(driver.sizes["cell"], 1))
    if setup == LATLON:
        return np.stack([driver.lat.values, driver.lon.values], axis=-1)
    missing = [c for c in columns(setup) if c not in driver]
    if missing:
        raise ValueError(f"driver lacks predictors {missing} that setup {setup} needs")
    return np.stack([driver[c].values.astype(np.float64) for c in columns(setup)], axis=-1)
