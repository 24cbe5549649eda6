"""Kernel SHAP of the spatialization network and of the twin's true parameter functions.

Used by :mod:`hybridland.analysis.explain` (tables, figures, entry points).

Design
------
*What is explained.* The explained features are the setup's predictor
columns (``info["columns"]``, network input order), as raw values. The
network also takes the hemisphere flag ``LAT_SIGMOID``, which enters only the
phenology head (Bday, Fday). It is not a predictor of the setup, so it is a
*held* column: the explained functions take a matrix whose trailing columns
(here raw latitude ``lat`` in degrees) are held at the explained cell's own
value during that cell's explanation and never receive SHAP. The functions
compute ``LAT_SIGMOID`` from it and standardise it with each member's own
statistics, as in training (the released script fed raw latitude; spec 12).
In the LATLON setup latitude is a predictor (``lat_deg``), and the flag is
computed from that column, so perturbing it moves both inputs, as it would
in the network.

*Truth.* :func:`true_function` wraps :func:`hybridland.data.twin.true_parameters`
with the same interface. Twin predictors the true function needs but the
setup lacks are held columns too: held at the explained cell's value, so the
truth's SHAP over the setup's columns is that of the true function restricted
to the cell's slice (for a setup that contains every twin predictor, it is the
plain true function). The truth renormalises PFT fractions that SHAP perturbs
off the simplex (:func:`hybridland.data.twin.pft_weights`).

*Members.* Kernel SHAP is linear in the explained function's outputs when the
coalition samples are shared and L1 feature selection is off (we set
``l1_reg=False``; shap's default would keep only 10 features). One run on the
stacked outputs of every kept member (:func:`member_function`) therefore gives
each member's SHAP values, and their mean is exactly the Kernel SHAP of the
ensemble mean (:func:`ensemble_function`) on the same samples, at the cost of
one run. Derived quantities (conventional Q10, whole-GPP allocation fractions
of spec 13) are computed per member and then averaged.

*Normalisation and shares.* Per run and per parameter, SHAP values are divided
by their range (max - min over cells and features), so every run spans an
interval of length one that contains zero (:func:`minmax_scale`). Unlike the
shifted (s - min) / (max - min), this keeps zero as "no contribution", which a
share of total absolute SHAP needs; the shares are invariant to the scaling.

Determinism: each explained cell is sampled with the global NumPy generator
(the one shap draws from) seeded from ``(seed, row)``, restored afterwards, so
results do not depend on chunking or on other code's use of NumPy's global
state.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from hybridland.contract import PFT, PREDICTOR_GROUPS
from hybridland.data import twin
from hybridland.model import network
from hybridland.model.parameters import check_quantities, quantities
from hybridland.training import setups, train

logger = logging.getLogger(__name__)

Function = Callable[[np.ndarray], np.ndarray]
"""Raw input rows (n, len(layout)) -> quantities (n, k)."""

LATITUDE = "lat"  # held column: latitude in degrees, for LAT_SIGMOID
# Every column the truth may read: soil only under overrides that name SOIL.
TWIN_COLUMNS = sum((PREDICTOR_GROUPS[g] for g in ("PFT", "CLIM", "AGE", "SOIL")), ())
IMPORTANCE_COLUMNS = ["setup", "parameter", "feature", "share"]
GROUP_COLUMNS = ["setup", "parameter", "group", "share"]
MEMBER_SPREAD = ["member_min", "member_max", "member_sd"]  # a group's share over the members
RANK_COLUMNS = ["setup", "parameter", "spearman"]
_SMALL = 256  # calls with at most this many rows are padded to it (one compiled shape)
_BLOCK = 16384  # larger calls run in blocks of this many rows (a second compiled shape)


# ---- the input matrix: explained columns, then held ones


def input_layout(
    columns: Sequence[str], *, truth: bool = False
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names of the explained and the held columns of the functions' input matrix.

    Explained: the setup's columns in network order. Held: raw latitude (unless
    the setup has ``lat_deg``) and, with ``truth``, the twin predictors that
    :func:`hybridland.data.twin.true_parameters` reads but the setup lacks.
    """
    held = () if "lat_deg" in columns else (LATITUDE,)
    if truth:
        held += tuple(c for c in TWIN_COLUMNS if c not in columns)
    return tuple(columns), held


def input_table(driver: xr.Dataset, setup: str, seed: int, layout: Sequence[str]) -> np.ndarray:
    """Raw input matrix of every driver cell, (cell, len(layout)); setup columns come first."""
    own = setups.feature_table(driver, setup, seed)
    columns = setups.columns(setup)
    if tuple(layout[: len(columns)]) != columns:
        raise ValueError(
            f"layout {list(layout)} does not start with the columns of {setup}: {list(columns)}"
        )
    extra = list(layout[len(columns) :])
    missing = [c for c in extra if c not in driver]
    if missing:
        raise ValueError(f"driver lacks columns {missing} needed to explain {setup}")
    held = [driver[c].values.astype(np.float64) for c in extra]
    return np.column_stack([own, *held]) if held else own


# ---- explained functions


def _check_members(members: Sequence[train.Member]) -> tuple[str, ...]:
    if not members:
        raise ValueError("no members to explain")
    columns = {tuple(m.info["columns"]) for m in members}
    setups_ = {m.info["setup"] for m in members}
    if len(columns) > 1 or len(setups_) > 1:
        raise ValueError(f"members mix setups {sorted(setups_)} or column lists {sorted(columns)}")
    return columns.pop()


@functools.partial(jax.jit, static_argnames=("names", "n_columns", "lat_index"))
def _forward(nets, means, stds, x, *, names, n_columns, lat_index):
    """(members' quantities) (n, n_members, k) from raw rows x (n, n_inputs), float32."""
    flag = network.lat_sigmoid(x[:, lat_index])[:, None]
    raw = jnp.concatenate([x[:, :n_columns], flag], axis=-1)
    out = []
    for net, mean, std in zip(nets, means, stds):
        z = (raw - mean) / std
        params = network.physical_parameters(net, z[:, :-1], z[:, -1])
        out.append(quantities(params, names, jnp))
    return jnp.stack(out, axis=1)


def _padded(fn: Callable[[jax.Array], jax.Array], x: np.ndarray) -> np.ndarray:
    """``fn`` on rows of ``x`` in a few fixed row counts, so jit compiles only twice."""
    n = x.shape[0]
    size = _SMALL if n <= _SMALL else _BLOCK
    blocks = []
    for start in range(0, n, size):
        chunk = x[start : start + size]
        pad = np.zeros((size - chunk.shape[0], x.shape[1]), x.dtype)
        blocks.append(
            np.asarray(fn(jnp.asarray(np.concatenate([chunk, pad]), jnp.float32)))[: chunk.shape[0]]
        )
    return np.concatenate(blocks).astype(np.float64)


def member_function(
    members: Sequence[train.Member],
    parameter_names: Sequence[str],
    layout: Sequence[str] | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """Each member's quantities from raw input rows: (n, len(layout)) -> (n, n_members, k).

    Args:
        members: trained members of one setup (own standardisers).
        parameter_names: quantities of :func:`quantities`.
        layout: names of the input columns; default ``input_layout(columns)``
            flattened. The setup's columns must come first; latitude is read from
            ``lat_deg`` when the setup has it, else from the ``lat`` column (degrees).
    """
    columns = _check_members(members)
    check_quantities(parameter_names)
    layout = tuple(layout) if layout is not None else sum(input_layout(columns), ())
    if layout[: len(columns)] != columns:
        raise ValueError(
            f"layout {list(layout)} does not start with the members' columns {list(columns)}"
        )
    lat_name = "lat_deg" if "lat_deg" in columns else LATITUDE
    if lat_name not in layout:
        raise ValueError(f"layout {list(layout)} lacks the latitude column '{lat_name}'")
    forward = functools.partial(
        _forward,
        [m.net for m in members],
        [jnp.asarray(m.standardizer.mean, jnp.float32) for m in members],
        [jnp.asarray(m.standardizer.std, jnp.float32) for m in members],
        names=tuple(parameter_names),
        n_columns=len(columns),
        lat_index=layout.index(lat_name),
    )
    return lambda x: _padded(forward, np.atleast_2d(np.asarray(x, np.float64)))


def ensemble_function(
    members: Sequence[train.Member],
    parameter_names: Sequence[str],
    layout: Sequence[str] | None = None,
) -> Function:
    """The mean over members of each quantity: (n, len(layout)) -> (n, k).

    Same interface as :func:`member_function` (raw predictor columns, then the
    held latitude); the mean is taken of the quantities, so a derived quantity
    such as Q10 is averaged after the transform.
    """
    each = member_function(members, parameter_names, layout)
    return lambda x: each(x).mean(axis=1)


def stacked(function: Callable[[np.ndarray], np.ndarray]) -> Function:
    """(n, ...) outputs flattened to (n, prod(...)), the 2-D form Kernel SHAP explains."""

    def flat(x: np.ndarray) -> np.ndarray:
        y = function(x)
        return y.reshape(y.shape[0], -1)

    return flat


def true_function(
    parameter_names: Sequence[str],
    layout: Sequence[str],
    overrides: twin.Overrides | None = None,
) -> Function:
    """The twin's TRUE quantities from raw input rows: (n, len(layout)) -> (n, k).

    ``layout`` must name every column :func:`hybridland.data.twin.true_parameters`
    may read (PFT fractions, MAT, MAP, elevation, canopy_height, forest_age, soil);
    use ``input_layout(columns, truth=True)``, whose held columns supply those the
    setup lacks. Other columns (latitude, white noise) are ignored. ``overrides``:
    the study's configured truth (none: the designed one).
    """
    check_quantities(parameter_names)
    missing = [c for c in TWIN_COLUMNS if c not in layout]
    if missing:
        raise ValueError(f"true_function: layout {list(layout)} lacks twin predictors {missing}")
    index = {c: list(layout).index(c) for c in TWIN_COLUMNS}

    def function(x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, np.float64))
        return quantities(
            twin.true_parameters({c: x[:, i] for c, i in index.items()}, overrides),
            parameter_names,
        )

    return function


# ---- Kernel SHAP


@contextlib.contextmanager
def _numpy_global_seed(entropy: Sequence[int]) -> Iterator[None]:
    """Seed NumPy's global generator (shap samples from it), restoring its state afterwards."""
    state = np.random.get_state()
    np.random.seed(np.random.SeedSequence(list(entropy)).generate_state(4))
    try:
        yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """shap logs every solved coefficient at INFO; keep that out of rule logs."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def _with_held(function: Function, held: np.ndarray, x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(x)
    return function(np.concatenate([x, np.broadcast_to(held, (x.shape[0], held.size))], axis=1))


def kernel_shap(
    function: Function,
    background: np.ndarray,
    explained: np.ndarray,
    *,
    nsamples: int | str = "auto",
    seed: int = 0,
    held: np.ndarray | None = None,
    progress: float = 0.1,
    label: str = "",
) -> np.ndarray:
    """Kernel SHAP values of ``function`` at each explained row, (n_explained, n_features, k).

    Args:
        function: rows (n, n_features + n_held) -> outputs (n, k).
        background: (n_background, n_features) background rows (explained features only).
        explained: (n_explained, n_features) rows to explain.
        nsamples: coalition samples per row (shap's ``"auto"``: 2 n_features + 2048);
            capped by shap at 2^n - 2, i.e. exact enumeration for few features.
        seed: sampling seed; row i uses the NumPy stream (seed, i).
        held: (n_explained, n_held) values appended to every row the function sees
            while row i is explained (held at the explained cell's value), or None.
        progress: log a progress line every this fraction of rows.
        label: prefix of the progress lines.

    The SHAP values of each row sum to f(row) - mean f(background) per output.
    """
    shap = _import("shap")
    n, p = explained.shape
    if background.ndim != 2 or background.shape[1] != p:
        raise ValueError(
            f"background {background.shape} and explained {explained.shape} differ in features"
        )
    if held is not None and held.shape[0] != n:
        raise ValueError(f"held values {held.shape} do not match {n} explained rows")
    every, start, out = max(1, int(np.ceil(progress * n))), time.monotonic(), None
    for i in range(n):
        f = function if held is None else functools.partial(_with_held, function, held[i])
        with _quiet("shap"), _numpy_global_seed((seed, i)):
            explainer = shap.KernelExplainer(f, background)
            phi = explainer.shap_values(explained[i], nsamples=nsamples, l1_reg=False, silent=True)
        phi = np.asarray(phi, np.float64).reshape(p, -1)
        out = np.empty((n, p, phi.shape[1])) if out is None else out
        out[i] = phi
        if (i + 1) % every == 0 or i + 1 == n:
            logger.info(
                "%s Kernel SHAP: %d/%d cells (%.0f s)", label, i + 1, n, time.monotonic() - start
            )
    return out if out is not None else np.empty((0, p, 0))


# ---- post-processing


def minmax_scale(values: np.ndarray) -> np.ndarray:
    """SHAP values (cell, feature, k) divided by their range per output k; zero range gives 0.

    The result spans an interval of length 1 (within [-1, 1]) that contains 0.
    """
    values = np.asarray(values, np.float64)
    span = values.max(axis=(0, 1)) - values.min(axis=(0, 1))
    return np.divide(values, span, out=np.zeros_like(values), where=span > 0)


def shares(values: np.ndarray) -> np.ndarray:
    """Each feature's share of total absolute SHAP, (feature, k); NaN where all SHAP is 0."""
    total = np.abs(minmax_scale(values)).sum(axis=0)
    whole = total.sum(axis=0)
    return np.divide(total, whole, out=np.full_like(total, np.nan), where=whole > 0)


def importance_table(
    values: np.ndarray, features: Sequence[str], names: Sequence[str], setup: str
) -> pd.DataFrame:
    """Columns ``setup, parameter, feature, share``; parameters in the order given, then
    features."""
    share = shares(values)
    rows = [
        (setup, name, feature, share[j, k])
        for k, name in enumerate(names)
        for j, feature in enumerate(features)
    ]
    return pd.DataFrame(rows, columns=IMPORTANCE_COLUMNS)


def feature_group(feature: str) -> str:
    """Predictor group of a column: PFT, CLIM, AGE, SOIL; CONTROL for noise; LATLON for lat/lon."""
    for group, columns in PREDICTOR_GROUPS.items():
        if feature in columns:
            return group
    if feature in setups.columns(setups.LATLON):
        return setups.LATLON
    if feature in setups.columns(setups.CONTROL):
        return setups.CONTROL
    raise ValueError(f"column {feature!r} belongs to no predictor group")


def group_table(importance: pd.DataFrame, members: pd.DataFrame | None = None) -> pd.DataFrame:
    """Feature shares summed by predictor group: ``setup, parameter, group, share``.

    With ``members`` (the per-member table, :data:`MEMBER_SPREAD` columns added): each
    group's share in every member too, summarised as ``member_min, member_max, member_sd``
    (population SD), the spread an ensemble mean hides.
    """
    keys = ["setup", "parameter", "group"]
    table = importance.assign(group=importance.feature.map(feature_group))
    summed = table.groupby(keys, sort=False).share.sum(min_count=1).reset_index()[GROUP_COLUMNS]
    if members is None:
        return summed
    per_member = (
        members.assign(group=members.feature.map(feature_group))
        .groupby([*keys, "member"], sort=False)
        .share.sum(min_count=1)
        .groupby(level=keys, sort=False)
    )
    spread = pd.DataFrame(
        {
            "member_min": per_member.min(),
            "member_max": per_member.max(),
            "member_sd": per_member.std(ddof=0),
        }
    ).reset_index()
    return summed.merge(spread, on=keys, how="left")[GROUP_COLUMNS + MEMBER_SPREAD]


def rank_correlation(
    learned: pd.Series | Mapping[str, float], true: pd.Series | Mapping[str, float]
) -> float:
    """Spearman correlation of two feature -> share mappings over their common features.

    NaN when fewer than two features are shared or either side is constant.
    """
    from scipy import stats

    learned, true = pd.Series(learned, dtype=float), pd.Series(true, dtype=float)
    common = learned.index.intersection(true.index)
    a, b = learned[common].to_numpy(), true[common].to_numpy()
    if common.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0 or not np.isfinite(a + b).all():
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def rank_correlations(learned: pd.DataFrame, true: pd.DataFrame) -> pd.DataFrame:
    """:func:`rank_correlation` per (setup, parameter) of two importance tables."""
    rows = []
    for (setup, name), part in learned.groupby(["setup", "parameter"], sort=False):
        other = true[(true.setup == setup) & (true.parameter == name)]
        rows.append(
            (
                setup,
                name,
                rank_correlation(part.set_index("feature").share, other.set_index("feature").share),
            )
        )
    return pd.DataFrame(rows, columns=RANK_COLUMNS)


# ---- cells


def sample_cells(candidates: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``count`` of ``candidates`` without replacement, sorted."""
    return np.sort(rng.choice(candidates, size=min(count, candidates.size), replace=False))


def dominant_pft_cells(driver: xr.Dataset, threshold: float = 0.8) -> dict[str, np.ndarray]:
    """Cell indices where one PFT covers at least ``threshold``, for each PFT with such cells."""
    out = {}
    for pft in PFT:
        if pft in driver:
            cells = np.flatnonzero(driver[pft].values >= threshold)
            if cells.size:
                out[pft] = cells
    return out


def _import(name: str) -> Any:
    """An optional analysis dependency, with a message that says what to install."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(
            f"hybridland.analysis.explain needs the '{name}' package for Kernel SHAP: "
            f"pip install {name}"
        ) from error
