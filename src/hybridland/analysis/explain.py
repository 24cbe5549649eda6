"""Kernel SHAP of the ensemble-mean network: which predictors drive each parameter, and how.

The reference study explains the ensemble-mean spatialization network with
Kernel SHAP (100 background cells, up to 1000 explained training cells), scales
the SHAP values of each run by their range, ranks features by their share of
total absolute SHAP, fits degree-4 polynomial ridge curves to the dependence of
SHAP on the feature value (Fig. 3 analogue) and repeats the ranking within
cells dominated by one plant functional type (conditional SHAP). In the twin
study the same procedure is applied to the TRUE parameter functions, so the
learned rankings can be scored against known ones.

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

*Dependence fits.* For each parameter, the three features with the largest
ensemble shares; SHAP (scaled per run) against the raw feature value, with a
polynomial ridge fit per member (thin) and for the ensemble (thick). The fit
is ``make_pipeline(StandardScaler(), PolynomialFeatures(4), Ridge(alpha=0.5))``:
the standardisation makes ``alpha`` mean the same for MAP in mm and PFT
fractions (the reference pipeline without it is badly conditioned for
features in the thousands).

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
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from hybridland.analysis import plots
from hybridland.contract import PFT, PREDICTOR_GROUPS
from hybridland.data import twin
from hybridland.io import write_csv, write_netcdf
from hybridland.model import network
from hybridland.model.parameters import KEY_QUANTITIES, check_quantities, quantities
from hybridland.training import setups, train
from hybridland.training.members import load_kept

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

Function = Callable[[np.ndarray], np.ndarray]
"""Raw input rows (n, len(layout)) -> quantities (n, k)."""

LATITUDE = "lat"  # held column: latitude in degrees, for LAT_SIGMOID
TWIN_COLUMNS = PREDICTOR_GROUPS["PFT"] + PREDICTOR_GROUPS["CLIM"] + PREDICTOR_GROUPS["AGE"]
IMPORTANCE_COLUMNS = ["setup", "parameter", "feature", "share"]
GROUP_COLUMNS = ["setup", "parameter", "group", "share"]
MEMBER_COLUMNS = ["setup", "member", "parameter", "feature", "share"]
CONDITIONAL_COLUMNS = ["setup", "pft", "parameter", "feature", "share"]
RANK_COLUMNS = ["setup", "parameter", "spearman"]
SIBLINGS = {
    "groups": "group_importance.csv",
    "members": "member_importance.csv",
    "conditional": "conditional_importance.csv",
    "values": "shap_values.nc",
    "truth": "truth_importance.csv",
    "truth_groups": "truth_group_importance.csv",
    "truth_rank": "truth_rank_correlation.csv",
}
_SMALL = 256  # calls with at most this many rows are padded to it (one compiled shape)
_BLOCK = 16384  # larger calls run in blocks of this many rows (a second compiled shape)


def key_parameters(extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The key quantities of the reference study, then any others named (order kept, no repeats)."""
    return tuple(dict.fromkeys((*KEY_QUANTITIES, *extra)))


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


def true_function(parameter_names: Sequence[str], layout: Sequence[str]) -> Function:
    """The twin's TRUE quantities from raw input rows: (n, len(layout)) -> (n, k).

    ``layout`` must name every column :func:`hybridland.data.twin.true_parameters`
    reads (PFT fractions, MAT, MAP, elevation, canopy_height, forest_age); use
    ``input_layout(columns, truth=True)``, whose held columns supply those the
    setup lacks. Other columns (soil, latitude, white noise) are ignored.
    """
    check_quantities(parameter_names)
    missing = [c for c in TWIN_COLUMNS if c not in layout]
    if missing:
        raise ValueError(f"true_function: layout {list(layout)} lacks twin predictors {missing}")
    index = {c: list(layout).index(c) for c in TWIN_COLUMNS}

    def function(x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, np.float64))
        return quantities(
            twin.true_parameters({c: x[:, i] for c, i in index.items()}), parameter_names
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
    """Columns ``setup, parameter, feature, share``; parameters in the order given, then features."""
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


def group_table(importance: pd.DataFrame) -> pd.DataFrame:
    """Feature shares summed by predictor group: ``setup, parameter, group, share``."""
    table = importance.assign(group=importance.feature.map(feature_group))
    summed = table.groupby(["setup", "parameter", "group"], sort=False).share.sum(min_count=1)
    return summed.reset_index()[GROUP_COLUMNS]


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


# ---- dependence plots


def dependence_fit(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Degree-4 polynomial ridge fit (alpha 0.5) on the standardised feature, evaluated on ``grid``."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    model = make_pipeline(StandardScaler(), PolynomialFeatures(4), Ridge(alpha=0.5))
    return model.fit(np.asarray(x)[:, None], np.asarray(y)).predict(np.asarray(grid)[:, None])


def top_features(importance: pd.DataFrame, parameter: str, count: int = 3) -> list[str]:
    """The ``count`` features with the largest shares for ``parameter``."""
    part = importance[importance.parameter == parameter].dropna(subset=["share"])
    return part.nlargest(count, "share").feature.tolist()


def dependence_figure(
    feature_values: np.ndarray,
    member_values: np.ndarray,
    features: Sequence[str],
    names: Sequence[str],
    importance: pd.DataFrame,
) -> Figure:
    """SHAP (scaled per run) against the raw value of each parameter's top three features.

    Args:
        feature_values: raw explained rows (cell, feature).
        member_values: SHAP values (cell, feature, member, k).
        features, names: labels of the feature and k axes.
        importance: ensemble shares (:func:`importance_table`), for the ranking.

    Points: the ensemble; thin lines: each member's fit; thick line: the ensemble's fit.
    """
    ensemble = minmax_scale(member_values.mean(axis=2))
    members = [minmax_scale(member_values[:, :, m]) for m in range(member_values.shape[2])]
    fig, axes = plots.new_figure(len(names), 3, panel=(3.2, 2.6))
    for k, name in enumerate(names):
        top = top_features(importance, name)
        for col, ax in enumerate(axes[k]):
            if col >= len(top):
                ax.set_axis_off()
                continue
            j = features.index(top[col])
            x = feature_values[:, j]
            grid = np.linspace(x.min(), x.max(), 100)
            ax.scatter(x, ensemble[:, j, k], s=4, alpha=0.4, color="0.5", linewidths=0)
            if np.ptp(x) > 0:
                for run in members:
                    ax.plot(
                        grid,
                        dependence_fit(x, run[:, j, k], grid),
                        color="tab:blue",
                        lw=0.6,
                        alpha=0.5,
                    )
                ax.plot(grid, dependence_fit(x, ensemble[:, j, k], grid), color="k", lw=1.8)
            ax.axhline(0.0, color="0.8", lw=0.5, zorder=0)
            ax.set_xlabel(top[col])
            ax.set_ylabel(f"SHAP ({name}, scaled)" if col == 0 else "")
    _legend(axes[0, 0], len(members))
    return fig


def _legend(ax: Any, n_members: int) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color="tab:blue", lw=0.6, label=f"fit per member ({n_members})"),
        Line2D([], [], color="k", lw=1.8, label="fit of the ensemble"),
    ]
    ax.legend(handles=handles, fontsize="x-small", frameon=False)


# ---- entry point


def sibling_paths(out_csv: Path | str) -> dict[str, Path]:
    """The files :func:`explain_files` writes beside ``out_csv`` (see :data:`SIBLINGS`)."""
    return {key: Path(out_csv).with_name(name) for key, name in SIBLINGS.items()}


def conditional_table(
    function: Function,
    table: np.ndarray,
    features: Sequence[str],
    cells: Mapping[str, np.ndarray],
    names: Sequence[str],
    setup: str,
    *,
    n_background: int,
    n_explained: int,
    nsamples: int | str,
    seed: int,
) -> pd.DataFrame:
    """Shares within each PFT's dominant cells: ``setup, pft, parameter, feature, share``.

    ``function`` returns (n, k); ``table`` is the raw input matrix of all cells,
    the explained ``features`` first, then the held columns. Background and
    explained cells both come from the PFT's ``cells``, so the ranking is
    conditional on that PFT.
    """
    p, parts = len(features), [pd.DataFrame(columns=CONDITIONAL_COLUMNS)]
    for number, (pft, pft_cells) in enumerate(cells.items()):
        rng = np.random.default_rng([seed, 2, number])
        back, expl = (
            sample_cells(pft_cells, n_background, rng),
            sample_cells(pft_cells, n_explained, rng),
        )
        values = kernel_shap(
            function,
            table[back, :p],
            table[expl, :p],
            nsamples=nsamples,
            seed=seed + number + 1,
            held=table[expl, p:],
            label=f"{setup} {pft}",
        )
        parts.append(
            importance_table(values, features, names, setup).assign(pft=pft)[CONDITIONAL_COLUMNS]
        )
    return pd.concat(parts, ignore_index=True)


def explain_files(
    driver_path: Path | str,
    members: Sequence[tuple[Path | str, Path | str]],
    selected_json: Path | str,
    grid: str,
    setup: str,
    parameters: Sequence[str],
    n_background: int,
    n_explained: int,
    nsamples: int | str,
    seed: int,
    out_csv: Path | str,
    out_figure_stem: Path | str,
    truth: bool,
    *,
    pft_threshold: float = 0.8,
    min_pft_cells: int = 10,
) -> None:
    """Entry point of the shap rule: explain the kept members of one setup on one grid.

    Inputs: the driver (``results/{study}/driver/{grid}.nc``), every member's
    (weights.npz, member.json), and ``selected.json`` naming the kept ones.
    Quantities: :func:`key_parameters` followed by ``parameters`` (config).
    Cells: background (``n_background``) and explained (``n_explained``) cells are
    drawn from the non-test cells with ``seed`` (fewer when there are fewer).

    Outputs (``out_csv``, e.g. ``results/{study}/shap/{grid}/{setup}/importance.csv``;
    the others lie beside it, :func:`sibling_paths`):
        importance.csv: ``setup, parameter, feature, share`` of the ensemble;
        group_importance.csv: ``setup, parameter, group, share``;
        member_importance.csv: ``setup, member, parameter, feature, share``;
        conditional_importance.csv: ``setup, pft, parameter, feature, share`` for
            each PFT covering >= ``pft_threshold`` of >= ``min_pft_cells``
            non-test cells (header only when there is none);
        shap_values.nc: SHAP (cell, feature, member, parameter) and raw features;
        with ``truth``: truth_importance.csv and truth_group_importance.csv (same
            columns, the twin's true functions on the same cells and samples) and
            truth_rank_correlation.csv (``setup, parameter, spearman``);
        ``<out_figure_stem>.png`` / ``.pdf``: dependence plots.
    """
    names = key_parameters(parameters)
    check_quantities(names)
    loaded = load_kept(selected_json, members)
    if loaded[0].info["setup"] != setup:
        raise ValueError(
            f"{selected_json}: members belong to setup {loaded[0].info['setup']}, not {setup}"
        )
    features, held = input_layout(loaded[0].info["columns"], truth=truth)
    with xr.open_dataset(driver_path) as ds:
        driver = ds.load()
    table = input_table(driver, setup, int(loaded[0].info["seed"]), features + held)
    candidates = np.flatnonzero(~driver.test.values.astype(bool))
    if candidates.size < 2:
        raise ValueError(f"{driver_path}: {candidates.size} non-test cells; SHAP needs at least 2")
    rng = np.random.default_rng([seed, 1])
    cells = sample_cells(candidates, n_background, rng), sample_cells(candidates, n_explained, rng)
    logger.info(
        "%s %s: %d members, %d background and %d explained cells, features %s, quantities %s",
        grid,
        setup,
        len(loaded),
        cells[0].size,
        cells[1].size,
        ", ".join(features),
        ", ".join(names),
    )
    run = Run(table, features, features + held, cells[0], cells[1], names, setup, nsamples, seed)
    outputs = sibling_paths(out_csv)
    importance = _explain_members(run, loaded, Path(out_csv), outputs, grid, out_figure_stem)
    pft_cells = {
        k: np.intersect1d(v, candidates)
        for k, v in dominant_pft_cells(driver, pft_threshold).items()
    }
    conditional = conditional_table(
        ensemble_function(loaded, names, run.layout),
        table,
        features,
        {k: v for k, v in pft_cells.items() if v.size >= min_pft_cells},
        names,
        setup,
        n_background=n_background,
        n_explained=n_explained,
        nsamples=nsamples,
        seed=seed,
    )
    write_csv(conditional, outputs["conditional"])
    if truth:
        _explain_truth(run, importance, outputs)


class Run(NamedTuple):
    """One explanation: the raw input matrix of all cells and what to explain on it."""

    table: np.ndarray  # (cell, len(layout)) raw inputs, explained features first
    features: tuple[str, ...]
    layout: tuple[str, ...]
    background: np.ndarray  # cell indices
    explained: np.ndarray  # cell indices
    names: tuple[str, ...]
    setup: str
    nsamples: int | str
    seed: int

    def shap(self, function: Function, label: str) -> np.ndarray:
        p = len(self.features)
        rows = self.table[self.explained]
        return kernel_shap(
            function,
            self.table[self.background, :p],
            rows[:, :p],
            nsamples=self.nsamples,
            seed=self.seed,
            held=rows[:, p:],
            label=label,
        )


def _explain_members(
    run: Run,
    members: Sequence[train.Member],
    out_csv: Path,
    outputs: Mapping[str, Path],
    grid: str,
    figure_stem: Path | str,
) -> pd.DataFrame:
    """Kernel SHAP of every member in one run; write importance tables, values and figure."""
    flat = run.shap(stacked(member_function(members, run.names, run.layout)), f"{grid} {run.setup}")
    values = flat.reshape(run.explained.size, len(run.features), len(members), len(run.names))
    importance = importance_table(values.mean(axis=2), run.features, run.names, run.setup)
    write_csv(importance, out_csv)
    write_csv(group_table(importance), outputs["groups"])
    write_csv(_member_table(values, run, members), outputs["members"])
    rows = run.table[run.explained, : len(run.features)]
    attrs = {"grid": grid, "setup": run.setup, "seed": run.seed}
    write_netcdf(_values_dataset(values, rows, run, members, attrs), outputs["values"])
    plots.save_figure(
        dependence_figure(rows, values, run.features, run.names, importance), figure_stem
    )
    return importance


def _member_table(values: np.ndarray, run: Run, members: Sequence[train.Member]) -> pd.DataFrame:
    parts = [
        importance_table(values[:, :, m], run.features, run.names, run.setup).assign(
            member=int(member.info["member"])
        )
        for m, member in enumerate(members)
    ]
    return pd.concat(parts, ignore_index=True)[MEMBER_COLUMNS]


def _values_dataset(
    values: np.ndarray,
    rows: np.ndarray,
    run: Run,
    members: Sequence[train.Member],
    attrs: Mapping[str, Any],
) -> xr.Dataset:
    return xr.Dataset(
        {
            "shap": (("cell", "feature", "member", "parameter"), values.astype(np.float32)),
            "feature_value": (("cell", "feature"), rows),
        },
        coords={
            "cell": run.explained,
            "feature": list(run.features),
            "member": [int(m.info["member"]) for m in members],
            "parameter": list(run.names),
        },
        attrs={**attrs, "description": "Kernel SHAP per kept member; their mean is the ensemble's"},
    )


def _explain_truth(run: Run, learned: pd.DataFrame, outputs: Mapping[str, Path]) -> None:
    """The same Kernel SHAP procedure on the twin's true functions, and its agreement with ``learned``."""
    values = run.shap(true_function(run.names, run.layout), f"{run.setup} truth")
    true = importance_table(values, run.features, run.names, run.setup)
    write_csv(true, outputs["truth"])
    write_csv(group_table(true), outputs["truth_groups"])
    ranks = rank_correlations(learned, true)
    logger.info(
        "%s: Spearman of learned vs true shares: %s",
        run.setup,
        ", ".join(f"{r.parameter} {r.spearman:.2f}" for r in ranks.itertuples()),
    )
    write_csv(ranks, outputs["truth_rank"])


def _import(name: str) -> Any:
    """An optional analysis dependency, with a message that says what to install."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(
            f"hybridland.analysis.explain needs the '{name}' package for Kernel SHAP: pip install {name}"
        ) from error


# ---- all explained setups of a grid


def group_shares_figure(groups: pd.DataFrame) -> Figure:
    """Stacked bars: each predictor group's share of total absolute SHAP, per quantity and setup."""
    setups_ = list(dict.fromkeys(groups.setup))
    fig, axes = plots.new_figure(1, len(setups_), panel=(5.0, 3.2))
    handles = {}
    for ax, setup in zip(axes[0], setups_):
        part = groups[groups.setup == setup]
        wide = part.pivot(index="parameter", columns="group", values="share").reindex(
            list(dict.fromkeys(part.parameter))
        )
        bottom = np.zeros(len(wide))
        for group in wide.columns:
            share = wide[group].fillna(0.0).to_numpy()
            handles[group] = ax.bar(
                wide.index,
                share,
                bottom=bottom,
                label=group,
                color=plots.GROUP_COLOURS.get(group, "0.5"),
            )
            bottom += share
        ax.set_title(setup)
        ax.set_ylabel("share of total |SHAP|")
        ax.tick_params(axis="x", rotation=60, labelsize="x-small")
    axes[0, -1].legend(
        handles=list(handles.values()),
        fontsize="x-small",
        frameon=False,
        bbox_to_anchor=(1.0, 1.0),
        loc="upper left",
    )
    return fig


def gather_files(
    importance: Sequence[Path | str],
    groups: Sequence[Path | str],
    out_csv: Path | str,
    figure_stem: Path | str,
) -> None:
    """Entry point of the gather_shap rule: one importance table and one group-share figure per grid."""
    table = pd.concat([pd.read_csv(p) for p in importance], ignore_index=True)[IMPORTANCE_COLUMNS]
    write_csv(table, Path(out_csv))
    plots.save_figure(
        group_shares_figure(pd.concat([pd.read_csv(p) for p in groups], ignore_index=True)),
        figure_stem,
    )
