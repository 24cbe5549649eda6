"""Principal component analysis of the learned parameters: along which axes they co-vary.

The analysed quantities (DESIGN.md, spec section 13) are canopy efficiency,
uWUE, Q10 (= exp(10 theta_T), spec 13), the autotrophic fraction f_gpp, LCMA,
the leaf onset (labile release) and leaf fall durations, leaf lifespan and the
whole-GPP allocation to labile, foliage, wood and roots. Each is standardised
across the land cells (z-score) and the PCA is the SVD of that cell x quantity
matrix. Loadings are the unit-length principal axes (quantity x component),
scores the projections of the cells (cell x component).

By default (``pca.quantities: identifiable``) the PCA analyses what the
identifiability table (criterion ``combined``) calls identifiable: the published
quantities whose every source parameter is, then every other identifiable
parameter (as itself; a parameter that is the only source of a published
quantity enters as that quantity). With ``all`` the twelve published quantities
enter, and the not identifiable ones are flagged on the biplot. When fewer than
two quantities are identifiable, the PCA falls back to the published twelve, with
a warning, so that it still has axes to show.

The learned PCA can be compared with the PCA of the twin's true parameters on
the same quantities by Tucker's congruence coefficient per component, after
aligning signs.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import ArrayLike

from hybridland.analysis import plots
from hybridland.io import write_csv, write_netcdf
from hybridland.model import parameters

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

ALLOCATION = ("autotrophic", "foliar", "labile", "root", "wood")
# analysed quantity -> the parameters (spec 4.1 names) it is computed from
SOURCES: dict[str, tuple[str, ...]] = {
    "canopy_efficiency": ("canopy_efficiency",),
    "uWUE": ("uWUE",),
    "Q10": ("Q10",),
    "autotrophic_fraction": ("f_gpp",),
    "LCMA": ("LCMA",),
    "leaf_onset_duration": ("clab_release_period",),
    "leaf_fall_duration": ("leaf_fall_period",),
    "leaf_lifespan": ("leaf_lifespan",),
    "labile_allocation": ("f_gpp", "f_fol", "flab"),
    "foliar_allocation": ("f_gpp", "f_fol"),
    "wood_allocation": ("f_gpp", "f_fol", "flab", "f_root"),
    "root_allocation": ("f_gpp", "f_fol", "flab", "f_root"),
}
QUANTITIES = tuple(SOURCES)
# Parameters that enter the identifiable PCA as themselves: all but the only source of a
# published quantity (canopy_efficiency, Q10, f_gpp, ...), which enters as that quantity.
OTHER_PARAMETERS = tuple(n for n in parameters.NAMES if (n,) not in SOURCES.values())
QUANTITY_SETS = ("identifiable", "all")  # config pca.quantities
MIN_QUANTITIES = 2  # fewer identifiable quantities than this: the PCA uses all, with a warning
PARAMETERS = parameters.NAMES  # what the parameter maps must hold
N_MAPPED = 3  # components shown in the biplot and the score maps


class PCAResult(NamedTuple):
    explained_variance_ratio: pd.Series  # (component,), sums to 1
    loadings: pd.DataFrame  # (quantity, component), unit-length columns
    scores: pd.DataFrame  # (cell, component), index as the input table's


def allocation_fractions(params: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """Whole-GPP allocation fractions from the sequential DALEC fractions (spec 6.7 and 13).

    autotrophic = f_gpp; foliar = (1 - f_gpp) f_fol; labile = (1 - f_gpp - foliar) flab;
    root = (1 - f_gpp - foliar - labile) f_root; wood = the remainder. They sum to 1.
    """
    f_a, f_fol, f_lab, f_root = (
        np.asarray(params[n], np.float64) for n in ("f_gpp", "f_fol", "flab", "f_root")
    )
    foliar = (1.0 - f_a) * f_fol
    labile = (1.0 - f_a - foliar) * f_lab
    root = (1.0 - f_a - foliar - labile) * f_root
    wood = 1.0 - f_a - foliar - labile - root
    return {"autotrophic": f_a, "foliar": foliar, "labile": labile, "root": root, "wood": wood}


def derived_quantities(
    params: Mapping[str, ArrayLike], names: Sequence[str] = QUANTITIES
) -> pd.DataFrame:
    """The analysed quantities ``names`` (columns, in that order) of every cell (rows):
    published quantities (:data:`QUANTITIES`) or parameters as themselves."""
    needed = dict.fromkeys(
        [p for sources in SOURCES.values() for p in sources]
        + [n for n in names if n not in SOURCES]
    )
    missing = [p for p in needed if p not in params]
    if missing:
        raise ValueError(f"parameters {missing} are needed for the PCA quantities")
    alloc = allocation_fractions(params)
    p = {n: np.asarray(params[n], np.float64) for n in needed}
    columns = {
        **{n: p[n] for n in names if n not in SOURCES},
        "canopy_efficiency": p["canopy_efficiency"],
        "uWUE": p["uWUE"],
        "Q10": np.exp(10.0 * p["Q10"]),
        "autotrophic_fraction": alloc["autotrophic"],
        "LCMA": p["LCMA"],
        "leaf_onset_duration": p["clab_release_period"],
        "leaf_fall_duration": p["leaf_fall_period"],
        "leaf_lifespan": p["leaf_lifespan"],
        "labile_allocation": alloc["labile"],
        "foliar_allocation": alloc["foliar"],
        "wood_allocation": alloc["wood"],
        "root_allocation": alloc["root"],
    }
    return pd.DataFrame(columns)[list(names)]


def standardise(table: pd.DataFrame) -> pd.DataFrame:
    """Z-score each column across rows (population std); a constant column becomes 0, with a
    warning."""
    values = table.to_numpy(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(
            "PCA table has non-finite values in columns "
            f"{list(table.columns[~np.isfinite(values).all(0)])}"
        )
    std = values.std(axis=0)
    constant = list(table.columns[std == 0])
    if constant:
        logger.warning(
            "columns %s are constant across cells; they carry no variance in the PCA", constant
        )
    return pd.DataFrame(
        (values - values.mean(axis=0)) / np.where(std > 0, std, 1.0),
        index=table.index,
        columns=table.columns,
    )


def pca(table: pd.DataFrame) -> PCAResult:
    """PCA of the standardised columns of ``table`` (rows = cells) by SVD.

    Each component's sign is fixed so that its largest-magnitude loading is positive.
    """
    if table.shape[0] < 2 or table.shape[1] < 1:
        raise ValueError(f"PCA needs at least 2 cells and 1 column, got shape {table.shape}")
    z = standardise(table).to_numpy()
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    signs = np.sign(vt[np.arange(vt.shape[0]), np.argmax(np.abs(vt), axis=1)])
    vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
    variance = s**2
    total = variance.sum()
    if total == 0:
        raise ValueError("PCA table has no variance: every column is constant across cells")
    names = [f"PC{i + 1}" for i in range(len(s))]
    return PCAResult(
        pd.Series(variance / total, index=pd.Index(names, name="component"), name="ratio"),
        pd.DataFrame(vt.T, index=pd.Index(table.columns, name="quantity"), columns=names),
        pd.DataFrame(z @ vt.T, index=table.index, columns=names),
    )


def tucker_congruence(a: ArrayLike, b: ArrayLike) -> float:
    """Tucker's congruence |sum a b| / sqrt(sum a^2 sum b^2) of two loading vectors; 1 = same
    axis."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"loading vectors differ in shape: {a.shape} and {b.shape}")
    norm = np.sqrt(np.sum(a**2) * np.sum(b**2))
    if norm == 0:
        raise ValueError("congruence of a zero loading vector is undefined")
    return float(abs(np.sum(a * b)) / norm)


def align_signs(reference: pd.DataFrame, loadings: pd.DataFrame) -> pd.DataFrame:
    """``loadings`` with each component's sign flipped where it points against ``reference``'s."""
    loadings = loadings.loc[reference.index, reference.columns]
    dots = (reference.to_numpy() * loadings.to_numpy()).sum(axis=0)
    return loadings * np.where(dots < 0, -1.0, 1.0)


def congruence(learned: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per component (same index in both), Tucker congruence of learned and true loadings.

    Returns rows ``component, congruence``.
    """
    components = [c for c in learned.columns if c in truth.columns]
    aligned = align_signs(truth[components], learned[components])
    return pd.DataFrame(
        {
            "component": components,
            "congruence": [
                tucker_congruence(aligned[c], truth.loc[aligned.index, c]) for c in components
            ],
        }
    )


def identifiable_parameters(identifiability: pd.DataFrame, setup: str) -> set[str]:
    """Parameters the identifiability table's ``combined`` verdict calls identifiable."""
    rows = identifiability[
        (identifiability["setup"] == setup) & (identifiability["criterion"] == "combined")
    ]
    if rows.empty:
        raise ValueError(
            f"identifiability table has no 'combined' rows for setup {setup!r} "
            f"(has {sorted(set(identifiability['setup']))})"
        )
    return set(rows.loc[rows["identifiable"].astype(bool), "parameter"])


def not_identifiable(identifiable: Collection[str]) -> set[str]:
    """Published quantities with a source parameter not in ``identifiable``."""
    return {q for q, sources in SOURCES.items() if not set(sources) <= set(identifiable)}


def analysed_quantities(identifiable: Collection[str], which: str) -> tuple[str, ...]:
    """The quantities the PCA uses: the published ``all``, or the ``identifiable`` ones
    (published quantities with identifiable sources, then :data:`OTHER_PARAMETERS` that are
    identifiable).

    Fewer than :data:`MIN_QUANTITIES` identifiable ones give the published ones, with a
    warning.
    """
    if which not in QUANTITY_SETS:
        raise ValueError(f"pca.quantities must be one of {list(QUANTITY_SETS)}, got {which!r}")
    if which == "all":
        return QUANTITIES
    flagged = not_identifiable(identifiable)
    chosen = tuple(q for q in QUANTITIES if q not in flagged) + tuple(
        p for p in OTHER_PARAMETERS if p in identifiable
    )
    if len(chosen) < MIN_QUANTITIES:
        logger.warning(
            "only %s of the PCA quantities are identifiable; the PCA uses all %d, "
            "the others flagged",
            list(chosen),
            len(QUANTITIES),
        )
        return QUANTITIES
    return chosen


# ---- grid <-> cells


def cells_of(params: xr.Dataset, names: Sequence[str]) -> pd.DataFrame:
    """Values of ``names`` at every (lat, lon) where all are finite; index (lat, lon)."""
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"parameter maps lack {missing}")
    frame = params[list(names)].transpose("lat", "lon").to_dataframe()[list(names)]
    return frame[np.isfinite(frame.to_numpy(np.float64)).all(axis=1)]


def scores_on_grid(scores: pd.DataFrame, lat: ArrayLike, lon: ArrayLike) -> xr.Dataset:
    """Scores with a (lat, lon) index as ``scores`` (component, lat, lon), NaN elsewhere."""
    components = list(scores.columns)
    grid = xr.DataArray(
        np.full((len(components), np.size(lat), np.size(lon)), np.nan),
        dims=("component", "lat", "lon"),
        coords={"component": components, "lat": np.asarray(lat), "lon": np.asarray(lon)},
    )
    ilat = grid.indexes["lat"].get_indexer(scores.index.get_level_values("lat"))
    ilon = grid.indexes["lon"].get_indexer(scores.index.get_level_values("lon"))
    grid.values[:, ilat, ilon] = scores.to_numpy().T
    grid.attrs = {
        "units": "1",
        "long_name": "principal component score of the standardised parameters",
    }
    return grid.to_dataset(name="score")


# ---- figures


def biplot(result: PCAResult, flagged: Collection[str] = (), n: int = N_MAPPED) -> Figure:
    """Score clouds and loading arrows for the pairs of the first ``n`` components.

    Quantities in ``flagged`` (not identifiable) get grey italic labels.
    """
    names = list(result.loadings.columns[:n])
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    fig, axes = plots.new_figure(1, max(len(pairs), 1), panel=(4.4, 4.4))
    for ax, (a, b) in zip(axes[0], pairs):
        ax.scatter(result.scores[a], result.scores[b], s=4, color="0.75", linewidths=0)
        scale = 0.8 * float(np.abs(result.scores[[a, b]].to_numpy()).max() or 1.0)
        for quantity, row in result.loadings.iterrows():
            grey = quantity in flagged
            ax.annotate(
                "",
                xy=(row[a] * scale, row[b] * scale),
                xytext=(0, 0),
                arrowprops={"arrowstyle": "->", "color": "0.6" if grey else "C0", "linewidth": 1.0},
            )
            ax.text(
                row[a] * scale * 1.08,
                row[b] * scale * 1.08,
                str(quantity),
                fontsize="x-small",
                color="0.5" if grey else "k",
                style="italic" if grey else "normal",
                ha="center",
                va="center",
            )
        ratio = result.explained_variance_ratio
        ax.set_xlabel(f"{a} ({100 * ratio[a]:.0f} %)")
        ax.set_ylabel(f"{b} ({100 * ratio[b]:.0f} %)")
        ax.axhline(0, color="k", linewidth=0.4)
        ax.axvline(0, color="k", linewidth=0.4)
    if flagged:
        fig.suptitle("grey italic: not identifiable", fontsize="small")
    return fig


def score_maps_figure(scores: xr.Dataset, ratio: pd.Series, n: int = N_MAPPED) -> Figure:
    """Maps of the scores of the first ``n`` components, on a symmetric diverging scale."""
    components = [str(c) for c in scores["component"].values[:n]]
    fig, axes = plots.new_figure(1, max(len(components), 1), panel=(4.2, 3.4))
    for ax, component in zip(axes[0], components):
        field = scores["score"].sel(component=component)
        limit = float(np.nanmax(np.abs(field.values))) or 1.0
        plots.map_panel(
            ax,
            field,
            title=f"{component} ({100 * ratio[component]:.0f} %)",
            cmap="RdBu_r",
            vmin=-limit,
            vmax=limit,
            label="score",
        )
    return fig


# ---- entry point


def _open(path: Path | str) -> xr.Dataset:
    with xr.open_dataset(path) as opened:
        return opened.load()


def truth_congruence(learned: PCAResult, cells: pd.Index, truth_nc: Path | str) -> pd.DataFrame:
    """Congruence of ``learned`` loadings with the PCA of the true parameters on the same cells
    and quantities."""
    truth = cells_of(_open(truth_nc), PARAMETERS)
    common = cells.intersection(truth.index)
    if len(common) < len(cells):
        logger.warning(
            "%s: true parameters cover %d of %d cells; their PCA uses those",
            truth_nc,
            len(common),
            len(cells),
        )
    names = list(learned.loadings.index)
    true = pca(derived_quantities({n: truth.loc[common, n].to_numpy() for n in PARAMETERS}, names))
    table = congruence(learned.loadings, true.loadings)
    table["learned_ratio"] = learned.explained_variance_ratio.reindex(table.component).to_numpy()
    table["true_ratio"] = true.explained_variance_ratio.reindex(table.component).to_numpy()
    return table


def pca_files(
    params_nc: Path | str,
    identifiability_csv: Path | str,
    grid: str,
    out_dir: Path | str,
    truth_nc: Path | str | None = None,
    setup: str | None = None,
    quantities: str = "identifiable",
) -> None:
    """Entry point of the pca rule: PCA of one setup's ensemble-mean parameter maps.

    Args:
        params_nc: ``results/{study}/params/{grid}/{setup}.nc`` (ensemble means on lat/lon).
        identifiability_csv: ``results/{study}/identifiability/{grid}/summary.csv``;
            its ``combined`` rows for the setup say what is identifiable.
        grid: the grid name, checked against ``params_nc``'s ``grid`` attribute.
        out_dir: ``results/{study}/pca/{grid}``; receives ``explained_variance.csv``
            (``component, ratio``), ``loadings.csv`` (``quantity, PC1, ...``),
            ``scores.nc`` (``score`` on component, lat, lon), ``biplot.{png,pdf}``,
            ``score_maps.{png,pdf}`` and, with ``truth_nc``, ``congruence.csv``
            (``component, congruence, learned_ratio, true_ratio``).
        truth_nc: the twin's ``results/{study}/regridded/{grid}/truth_parameters.nc``, or None.
        setup: the identifiability rows to use; default ``params_nc``'s ``setup`` attribute.
        quantities: ``identifiable`` (the quantities that are) or ``all`` (config).
    """
    out = Path(out_dir)
    params = _open(params_nc)
    if params.attrs.get("grid", grid) != grid:
        raise ValueError(
            f"{params_nc}: parameter maps are for grid {params.attrs['grid']!r}, not {grid!r}"
        )
    setup = setup or params.attrs.get("setup")
    if setup is None:
        raise ValueError(f"{params_nc}: no 'setup' attribute; pass the setup explicitly")
    identifiable = identifiable_parameters(pd.read_csv(identifiability_csv), setup)
    flagged = not_identifiable(identifiable)
    names = analysed_quantities(identifiable, quantities)
    cells = cells_of(params, PARAMETERS)
    result = pca(derived_quantities({n: cells[n].to_numpy() for n in PARAMETERS}, names))
    result.scores.index = cells.index
    scores = scores_on_grid(result.scores, params.lat.values, params.lon.values)
    scores.attrs = {
        "Conventions": "CF-1.8",
        "grid": grid,
        "setup": setup,
        "quantities": " ".join(names),
        "title": f"hybridland PCA scores of the learned parameters, {setup} on {grid}",
    }
    write_csv(result.explained_variance_ratio.reset_index(), out / "explained_variance.csv")
    write_csv(result.loadings.reset_index(), out / "loadings.csv")
    write_netcdf(scores, out / "scores.nc")
    if truth_nc is not None:
        write_csv(truth_congruence(result, cells.index, truth_nc), out / "congruence.csv")
    plots.save_figure(biplot(result, flagged & set(names)), out / "biplot")
    plots.save_figure(
        score_maps_figure(scores, result.explained_variance_ratio), out / "score_maps"
    )
    head = ", ".join(
        f"{c} {r:.2f}" for c, r in result.explained_variance_ratio.iloc[:N_MAPPED].items()
    )
    logger.info(
        "%s/%s: PCA of %d quantities on %d cells; explained variance %s; not identifiable: %s",
        grid,
        setup,
        len(names),
        len(cells),
        head,
        sorted(flagged),
    )
