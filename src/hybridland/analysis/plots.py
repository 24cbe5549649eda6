"""Shared plotting helpers: figures without pyplot, maps on (lat, lon), atomic PNG + PDF.

Figures are built from :class:`matplotlib.figure.Figure` directly, which draws
with the Agg canvas and touches no global backend state, so library code never
calls ``matplotlib.use``. matplotlib is imported inside the functions: the
analyses themselves (partition, identifiability, PCA) run without it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from hybridland.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

FORMATS = ("png", "pdf")
DPI = 200
# One colour per predictor group in every figure (partition bars, SHAP shares).
GROUP_COLOURS = {
    "PFT": "C0",
    "CLIM": "C1",
    "SOIL": "C2",
    "AGE": "C3",
    "LATLON": "C4",
    "CONTROL": "C7",
}


def figure_paths(stem: Path | str) -> list[Path]:
    """The files :func:`save_figure` writes for ``stem``: ``<stem>.png`` and ``<stem>.pdf``."""
    stem = Path(stem)
    return [stem.with_name(f"{stem.name}.{fmt}") for fmt in FORMATS]


def new_figure(
    nrows: int = 1, ncols: int = 1, *, panel: tuple[float, float] = (4.0, 3.2), **subplots: Any
) -> tuple[Figure, np.ndarray]:
    """A figure of ``nrows`` x ``ncols`` panels of ``panel`` inches each; axes as a 2-D array."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots)
    return fig, axes


def save_figure(fig: Figure, stem: Path | str) -> list[Path]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.pdf``, each atomically; return the paths."""
    paths = figure_paths(stem)
    for path, fmt in zip(paths, FORMATS):
        with atomic_path(path) as temporary:
            fig.savefig(temporary, format=fmt, dpi=DPI)
    logger.info("wrote %s", ", ".join(str(p) for p in paths))
    return paths


def cell_edges(centres: np.ndarray) -> np.ndarray:
    """Edges (n + 1,) of cells with the given monotonic centres (n,); one cell gets width 1."""
    centres = np.asarray(centres, np.float64)
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    inner = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - inner[0]], inner, [2 * centres[-1] - inner[-1]]])


def map_panel(
    ax: Axes,
    field: xr.DataArray,
    *,
    title: str = "",
    cmap: Any = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
    label: str = "",
    ticks: Sequence[float] | None = None,
    ticklabels: Sequence[str] | None = None,
) -> Any:
    """Draw a (lat, lon) field as cells on ``ax``; NaN cells stay blank. Returns the mesh."""
    if set(field.dims) != {"lat", "lon"}:
        raise ValueError(f"map of {field.name!r} needs dims (lat, lon), got {field.dims}")
    field = field.transpose("lat", "lon")
    values = np.ma.masked_invalid(np.asarray(field.values, np.float64))
    mesh = ax.pcolormesh(
        cell_edges(field.lon.values),
        cell_edges(field.lat.values),
        values,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        shading="flat",
    )
    ax.set_aspect(1.0 / max(np.cos(np.deg2rad(float(np.mean(field.lat.values)))), 0.1))
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel("longitude (deg E)")
    ax.set_ylabel("latitude (deg N)")
    if colorbar:
        bar = ax.figure.colorbar(mesh, ax=ax, shrink=0.85, label=label, ticks=ticks)
        if ticklabels is not None:
            bar.ax.set_yticklabels(list(ticklabels))
    return mesh


def categorical_cmap(n: int) -> Any:
    """A discrete colormap of ``n`` distinguishable colours (tab10 order)."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    base = matplotlib.colormaps["tab10"]
    return ListedColormap([base(i % 10) for i in range(max(n, 1))])
