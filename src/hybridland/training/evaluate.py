"""Evaluate the members of one setup: skill per target and split, maps, parameter recovery.

A member's 40 parameters are predicted on every driver cell and DALEC993 is run
on them (float32, jitted, in chunks of cells). Each target is compared with its
model counterpart exactly as the loss compares it (:mod:`hybridland.model.targets`,
on the observations and weights of :func:`hybridland.training.batches.observations`):
fine targets per cell and month, NBE and the EWT anomaly as patch means, biomass
as means over 12-month blocks, soil carbon as the time mean, and the
eddy-covariance targets at the site cells only. Skill is the Nash-Sutcliffe
efficiency (``r2_score``) and the squared Pearson correlation
(``explained_variance``), per split: the member's training and dev patches and
the fixed test patches. The setup's skill is the mean over its kept members.

Two kinds of rows (column ``metric``): ``r2_score_pooled``, the scores over all
pairs of a split pooled, and ``nse_cell_median`` (:func:`cell_median_scores`),
the median over the test cells of each cell's temporal scores, for the targets
with a time series per cell (:data:`CELL_SERIES`).

Arrays are time-major: simulations are (time, cell), as DALEC returns them,
while the driver holds (cell, time) and coarse targets (patch_id, time).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from hybridland.contract import SITE_TARGETS
from hybridland.data.driver import parameters_at_cells
from hybridland.io import atomic_path, grid_coords, write_csv, write_netcdf
from hybridland.model import dalec, forward, parameters, targets
from hybridland.training import batches
from hybridland.training.members import kept_files, load_member, member_parameters
from hybridland.training.skill import (
    columnwise_scores,
    explained_variance,
    finite_pairs,
    pearson_r,
    r2_score,
)

logger = logging.getLogger(__name__)

Simulation = dict[str, np.ndarray]  # DALEC output name -> (time, cell)
Pairs = dict[str, tuple[np.ndarray, np.ndarray]]  # target -> (observed, simulated), flat

POOL_OUTPUTS = tuple(f"next_{p}_pool" for p in parameters.POOLS)
SIM_OUTPUTS: tuple[str, ...] = ("lai", "gpp", "ET", "nee", "nbe", "SIF") + POOL_OUTPUTS
FINE = ("lai", "sif", "et")  # targets mapped per cell over time
SPLITS = ("train", "dev", "test")
METRIC_COLUMNS = (
    "grid",
    "setup",
    "member",
    "variable",
    "split",
    "metric",
    "r2_score",
    "explained_variance",
    "n",
)
POOLED, CELL_MEDIAN = "r2_score_pooled", "nse_cell_median"  # the kinds of metrics rows
# Targets with a time series per cell (months, or years of 12-month blocks); not the site ones.
CELL_SERIES = tuple(
    name
    for name in targets.EVALUATED
    if targets.TERMS[name].aggregation == "cell"
    and targets.TERMS[name].timescale in ("step", "annual")
    and name not in SITE_TARGETS
)
RECOVERY_COLUMNS = ("grid", "setup", "parameter", "pearson_r", "bias", "rmse")
SIMULATED = ("lai", "gpp", "ET", "nee", "nbe") + POOL_OUTPUTS


# ---- metrics (pure numpy)


def parameter_recovery(
    estimate: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """Pearson r, bias (mean of estimate - truth) and RMSE per parameter, over finite cells.

    Parameters are taken in table order, those present in both mappings. A phase
    (:data:`hybridland.model.parameters.PERIODS`) is compared at its representative nearest
    the truth, since whole periods apart it is the same model.
    """
    rows = []
    for name in [n for n in parameters.NAMES if n in estimate and n in truth]:
        est, tru = finite_pairs(estimate[name], truth[name])
        est = parameters.aligned(name, est, tru)
        gap = est - tru
        rows.append(
            {
                "parameter": name,
                "pearson_r": pearson_r(est, tru),
                "bias": float(gap.mean()) if gap.size else float("nan"),
                "rmse": float(np.sqrt(np.mean(gap**2))) if gap.size else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=["parameter", "pearson_r", "bias", "rmse"])


# ---- simulation


def simulate_cells(
    driver: xr.Dataset,
    params: Mapping[str, np.ndarray],
    *,
    chunk: int = 2000,
    outputs: Sequence[str] = SIM_OUTPUTS,
) -> Simulation:
    """Run DALEC993 (float32) on every driver cell with per-cell parameters.

    Args:
        driver: the model driver (forcing on ``cell`` and ``time``).
        params: the 40 physical parameters by name, each (cell,).
        chunk: cells per jitted run; the last chunk is padded to this size so
            that the run compiles once.
        outputs: DALEC outputs to keep.

    Returns:
        Output name -> (time, cell) float32 array.
    """
    problem = parameters.out_of_bounds({k: np.asarray(v) for k, v in params.items()})
    if problem:
        raise ValueError(f"simulate_cells: {problem}")
    met, climate = forward.forcing_arrays(driver, np.float32)
    n_cell = driver.sizes["cell"]
    size = max(1, min(chunk, n_cell))
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
    for start in range(0, n_cell, size):
        index = np.minimum(np.arange(start, start + size), n_cell - 1)  # pads with the last cell
        keep = min(size, n_cell - start)
        run = forward.simulate(
            {k: jnp.asarray(np.asarray(v)[index], jnp.float32) for k, v in params.items()},
            dalec.Met(*(jnp.asarray(x[:, index]) for x in met)),
            dalec.Climate(*(jnp.asarray(x[index]) for x in climate)),
            tuple(outputs),
        )
        for name in outputs:
            pieces[name].append(np.asarray(run[name])[:, :keep])
    return {name: np.concatenate(p, axis=1) for name, p in pieces.items()}


# ---- targets and their model counterparts


def _patch_pairs(
    driver: xr.Dataset, model: np.ndarray, value: np.ndarray, weight: np.ndarray, cells: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted means over each patch's cells of observation and model, as the loss forms them.

    Patches: those with a cell among ``cells``, with all their cells; a (patch, time)
    pair counts where the patch has observation weight.
    """
    patch_ids, cell_patch = driver.patch_id.values, driver.patch.values
    chosen = patch_ids[np.isin(patch_ids, cell_patch[cells])]
    membership = (cell_patch[:, None] == chosen[None, :]).astype(np.float64)  # (cell, patch)
    total = weight @ membership
    keep = total > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        obs, sim = ((weight * value) @ membership / total, (weight * model) @ membership / total)
    return obs[keep], sim[keep]


def target_pairs(
    driver: xr.Dataset, sim: Mapping[str, np.ndarray], cells_mask: np.ndarray
) -> Pairs:
    """Observed and simulated values of every target the driver holds, over the cells of the mask.

    Each target is compared as the loss compares it (:mod:`hybridland.model.targets`), on
    the observations and weights training sees (:func:`hybridland.training.batches.observations`):
    per cell and month (lai, sif, et; site targets where the site weight is positive), per
    cell and block of 12 months with every month observed (biomass), per cell as the time
    mean (som), and per patch and month as the weighted mean over the patch's cells (nbe;
    ewt, the model as its anomaly from the mean over the observed months).

    Returns:
        Target -> (observed, simulated), flat float64 arrays of the pairs with weight.
    """
    mask = np.asarray(cells_mask, bool)
    if mask.shape != (driver.sizes["cell"],):
        raise ValueError(
            f"cells_mask has shape {mask.shape}, the driver has {driver.sizes['cell']} cells"
        )
    out: Pairs = {}
    for name, (model, value, weight) in _compared(driver, sim, targets.EVALUATED).items():
        if targets.TERMS[name].aggregation == "patch":
            out[name] = _patch_pairs(driver, model, value, weight, mask)
        else:
            keep = (weight > 0) & mask
            out[name] = value[keep], model[keep]
    return out


def _compared(
    driver: xr.Dataset, sim: Mapping[str, np.ndarray], names: Sequence[str]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Model, observed value and weight of each named target the driver holds, on its timescale."""
    observations = batches.observations(driver)
    out = {}
    for name in names:
        if name not in observations:
            continue
        value, weight = (np.asarray(x, np.float64) for x in observations[name])
        outputs = {o: np.asarray(sim[o], np.float64) for o in targets.TERMS[name].outputs}
        model = targets.model_quantity(name, outputs, weight)
        out[name] = targets.on_timescale(name, model, value, weight, targets.STEPS_PER_YEAR)
    return out


def cell_median_scores(
    driver: xr.Dataset, sim: Mapping[str, np.ndarray], cells_mask: np.ndarray
) -> dict[str, tuple[float, float, int]]:
    """Median over the cells of the mask of each cell's temporal NSE and squared Pearson r.

    Per target of :data:`CELL_SERIES` the driver holds, compared as the loss compares it
    (months; biomass in 12-month blocks with every month observed). A cell is left out
    where it has fewer than 3 observed steps or its observations have no variance (its
    NSE is undefined); the squared r also leaves out cells whose simulation is flat.

    Returns:
        Target -> (median NSE, median squared r, number of cells with a defined NSE);
        NaN medians where no cell has one.
    """
    mask = np.asarray(cells_mask, bool)
    out = {}
    for name, (model, value, weight) in _compared(driver, sim, CELL_SERIES).items():
        observed = np.where(weight > 0, value, np.nan)[:, mask]
        nse, r2, _ = columnwise_scores(observed, model[:, mask])
        defined = np.isfinite(nse)
        out[name] = (
            float(np.median(nse[defined])) if defined.any() else float("nan"),
            float(np.nanmedian(r2)) if np.isfinite(r2).any() else float("nan"),
            int(defined.sum()),
        )
    return out


def split_masks(driver: xr.Dataset, info: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Cells of the member's training and dev patches, and of the fixed test patches."""
    patch = driver.patch.values
    return {
        "train": np.isin(patch, np.asarray(info["train_patches"], int)),
        "dev": np.isin(patch, np.asarray(info["dev_patches"], int)),
        "test": np.asarray(driver.test.values, bool),
    }


def member_metrics(
    driver: xr.Dataset, sim: Mapping[str, np.ndarray], info: Mapping[str, Any]
) -> pd.DataFrame:
    """Rows ``variable, split, metric, r2_score, explained_variance, n``.

    ``r2_score_pooled``: per (variable, split), the scores of all pairs pooled, ``n``
    pairs. ``nse_cell_median``: per target of :data:`CELL_SERIES` on the test cells,
    the medians of :func:`cell_median_scores`, ``n`` cells.
    """
    return split_metrics(driver, sim, split_masks(driver, info))


def split_metrics(
    driver: xr.Dataset, sim: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """:func:`member_metrics` on the cells of each named split (``masks``, one ``test``)."""
    rows = [
        (variable, split, POOLED, r2_score(o, s), explained_variance(o, s), int(o.size))
        for split, mask in masks.items()
        for variable, (o, s) in target_pairs(driver, sim, mask).items()
    ]
    rows += [
        (variable, "test", CELL_MEDIAN, *scores)
        for variable, scores in cell_median_scores(driver, sim, masks["test"]).items()
    ]
    table = pd.DataFrame(rows, columns=list(METRIC_COLUMNS[3:]))
    return _sort_rows(table, ["metric", "variable", "split"])


def metrics_table(rows: pd.DataFrame, grid: str, setup: str) -> pd.DataFrame:
    """Member and ensemble rows of one (grid, setup) in the columns and order of metrics.csv."""
    metrics = _sort_rows(
        rows.assign(grid=grid, setup=setup), ["member", "metric", "variable", "split"]
    )
    # member rows count pairs; ensemble rows average counts, which need not be whole
    whole = [int(v) if float(v).is_integer() else float(v) for v in metrics["n"]]
    metrics["n"] = pd.Series(whole, index=metrics.index, dtype=object)
    return metrics[list(METRIC_COLUMNS)]


def _sort_rows(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sort with targets, splits and parameters in their canonical order and members numerically."""
    orders = {
        "variable": targets.EVALUATED,
        "split": SPLITS,
        "parameter": parameters.NAMES,
        "metric": (POOLED, CELL_MEDIAN),
    }

    def key(column: pd.Series) -> pd.Series:
        if column.name in orders:
            rank = {v: i for i, v in enumerate(orders[str(column.name)])}
            return column.map(lambda v: rank.get(v, len(rank)))
        if column.name == "member":
            return column.map(lambda v: float("inf") if str(v) == "ensemble" else float(v))
        return column

    return table.sort_values(by, key=key, kind="stable").reset_index(drop=True)


def ensemble_metrics(members: pd.DataFrame) -> pd.DataFrame:
    """Mean over members of r2_score, explained_variance and n, per (metric, variable, split)."""
    grouped = members.groupby(["metric", "variable", "split"], sort=False)[
        ["r2_score", "explained_variance", "n"]
    ]
    mean = grouped.mean().reset_index()
    return _sort_rows(mean.assign(member="ensemble"), ["metric", "variable", "split"])


# ---- maps


def to_grid(driver: xr.Dataset, values: np.ndarray) -> np.ndarray:
    """A per-cell (..., cell) field on the grid, (..., lat, lon), NaN where the driver has no
    cell."""
    values = np.asarray(values, np.float64)
    out = np.full(values.shape[:-1] + (driver.sizes["y"], driver.sizes["x"]), np.nan)
    out[..., driver.cell_y.values, driver.cell_x.values] = values
    return out


def per_cell_temporal_r2(driver: xr.Dataset, sim: Mapping[str, np.ndarray]) -> xr.Dataset:
    """Per-cell skill over time of the fine targets, as (lat, lon) maps.

    Variables ``<target>_r2`` (squared Pearson r over the cell's months) and
    ``<target>_nse`` (Nash-Sutcliffe efficiency) for lai, sif and et; NaN off
    the driver's cells and where a cell has fewer than 3 observed months.
    """
    data = {}
    for name in FINE:
        output = targets.TERMS[name].outputs[0]
        if name not in driver:
            continue
        nse, r2, _ = columnwise_scores(driver[name].transpose("time", "cell").values, sim[output])
        for metric, values, long_name in (
            ("r2", r2, "squared Pearson correlation over time"),
            ("nse", nse, "Nash-Sutcliffe efficiency over time"),
        ):
            data[f"{name}_{metric}"] = (
                ("lat", "lon"),
                to_grid(driver, values).astype(np.float32),
                {"units": "1", "long_name": f"{name}: {long_name}"},
            )
    return xr.Dataset(
        data,
        coords=grid_coords(driver.grid_lat.values, driver.grid_lon.values),
        attrs={"Conventions": "CF-1.8"},
    )


def parameter_maps(driver: xr.Dataset, members: Sequence[Mapping[str, np.ndarray]]) -> xr.Dataset:
    """Ensemble mean ``<name>`` and population standard deviation ``<name>_std`` of every parameter
    on (lat, lon); circular for the phases (:data:`hybridland.model.parameters.PERIODS`)."""
    data = {}
    for name in parameters.NAMES:
        stack = np.stack([np.asarray(m[name], np.float64) for m in members])  # (member, cell)
        info = parameters.BY_NAME[name]
        for suffix, values, long_name in (
            ("", parameters.ensemble_mean(name, stack), f"{info.long_name}, ensemble mean"),
            (
                "_std",
                parameters.ensemble_std(name, stack),
                f"{info.long_name}, ensemble standard deviation",
            ),
        ):
            attrs = {"units": info.units, "long_name": long_name, "grid_mapping": "crs"}
            data[name + suffix] = (
                ("lat", "lon"),
                to_grid(driver, values).astype(np.float32),
                attrs,
            )
    data["crs"] = (
        (),
        np.int32(0),
        {"grid_mapping_name": "latitude_longitude", "epsg_code": "EPSG:4326"},
    )
    return xr.Dataset(
        data,
        coords=grid_coords(driver.grid_lat.values, driver.grid_lon.values),
        attrs={"Conventions": "CF-1.8", "ensemble_size": len(members)},
    )


def simulated_dataset(
    driver: xr.Dataset, sim: Mapping[str, np.ndarray], cells_mask: np.ndarray
) -> xr.Dataset:
    """The simulated outputs of SIMULATED on the cells of the mask, (time, cell), with lat/lon per
    cell."""
    mask = np.asarray(cells_mask, bool)
    long_names = {
        "lai": "leaf area index",
        "gpp": "gross primary production",
        "ET": "evapotranspiration",
        "nee": "net ecosystem exchange",
        "nbe": "net biosphere exchange",
        "next_water_pool": "plant-accessible water (counterpart of EWT)",
    }
    data = {
        name: (
            ("time", "cell"),
            np.asarray(sim[name])[:, mask].astype(np.float32),
            {
                "units": dalec.output_units(name),
                "long_name": long_names.get(name, name.replace("_", " ")),
                "coordinates": "lat lon",
            },
        )
        for name in SIMULATED
    }
    coords = {
        "time": driver.time.values,
        "lat": (
            "cell",
            driver.lat.values[mask],
            {"units": "degrees_north", "standard_name": "latitude"},
        ),
        "lon": (
            "cell",
            driver.lon.values[mask],
            {"units": "degrees_east", "standard_name": "longitude"},
        ),
        "cell_y": (
            "cell",
            driver.cell_y.values[mask],
            {"long_name": "row of the cell on the grid"},
        ),
        "cell_x": (
            "cell",
            driver.cell_x.values[mask],
            {"long_name": "column of the cell on the grid"},
        ),
        "patch": ("cell", driver.patch.values[mask], {"long_name": "global patch number"}),
    }
    return xr.Dataset(
        data, coords=coords, attrs={"Conventions": "CF-1.8", "featureType": "timeSeries"}
    )


def write_geotiff(dataarray: xr.DataArray, path: Path | str) -> None:
    """Write a (lat, lon) or (y, x) field as a north-up EPSG:4326 GeoTIFF, atomically."""
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    da = dataarray.rename({k: v for k, v in (("lat", "y"), ("lon", "x")) if k in dataarray.dims})
    if set(da.dims) != {"y", "x"}:
        raise ValueError(
            f"{path}: GeoTIFF needs a 2-D (lat, lon) or (y, x) field, got dims {da.dims}"
        )
    da = da.transpose("y", "x").sortby("y", ascending=False).sortby("x")
    da = da.drop_vars([c for c in da.coords if c not in ("y", "x")])
    da = da.rio.set_spatial_dims(x_dim="x", y_dim="y").rio.write_crs("EPSG:4326")
    da = da.rio.write_nodata(np.nan, encoded=False) if np.issubdtype(da.dtype, np.floating) else da
    with atomic_path(path) as temporary:
        da.rio.to_raster(temporary, driver="GTiff")


# ---- files


def _check_member(info: Mapping[str, Any], setup: str, source: Path | str) -> None:
    missing = [k for k in ("setup", "member", "train_patches", "dev_patches") if k not in info]
    if missing:
        raise ValueError(f"{source}: member info lacks keys {missing}")
    if info["setup"] != setup:
        raise ValueError(f"{source}: member belongs to setup {info['setup']!r}, not {setup!r}")


def _check_driver(driver: xr.Dataset, grid: str, source: Path | str) -> None:
    if "grid" in driver.attrs and driver.attrs["grid"] != grid:
        raise ValueError(f"{source}: driver is for grid {driver.attrs['grid']!r}, not {grid!r}")
    needed = (
        "lat",
        "lon",
        "cell_y",
        "cell_x",
        "patch",
        "test",
        "land_mask",
        "grid_lat",
        "grid_lon",
    )
    missing = [v for v in needed if v not in driver.variables]
    if missing:
        raise ValueError(f"{source}: driver lacks variables {missing}")


class Ensemble(NamedTuple):
    """What the evaluation of one setup's members yields."""

    numbers: list[int]  # member numbers, in the order given
    metrics: pd.DataFrame  # member rows then ensemble rows, without grid and setup
    params: list[dict[str, np.ndarray]]  # per member: name -> (cell,)
    mean_sim: Simulation  # ensemble-mean simulation, (time, cell) float64


def run_members(
    driver: xr.Dataset, members: Sequence[tuple[Path | str, Path | str]], setup: str
) -> Ensemble:
    """Parameters, simulation and metrics of every member; the ensemble mean of the simulations."""
    numbers, tables, params = [], [], []
    total: Simulation = {}
    for weights, info_path in members:
        member = load_member(Path(weights), Path(info_path))
        _check_member(member.info, setup, info_path)
        numbers.append(int(member.info["member"]))
        logger.info(
            "%s member %d: parameters and simulation of %d cells",
            setup,
            numbers[-1],
            driver.sizes["cell"],
        )
        params.append(member_parameters(driver, member))
        sim = simulate_cells(driver, params[-1])
        tables.append(member_metrics(driver, sim, member.info).assign(member=numbers[-1]))
        total = {k: total.get(k, 0.0) + np.asarray(v, np.float64) for k, v in sim.items()}
    per_member = pd.concat(tables, ignore_index=True)
    metrics = pd.concat([per_member, ensemble_metrics(per_member)], ignore_index=True)
    return Ensemble(numbers, metrics, params, {k: v / len(members) for k, v in total.items()})


def evaluate_setup(
    driver_path: Path | str,
    members: Sequence[tuple[Path | str, Path | str]],
    grid: str,
    setup: str,
    *,
    metrics_csv: Path | str,
    params_nc: Path | str,
    simulated_nc: Path | str,
    maps_nc: Path | str,
    truth_nc: Path | str | None = None,
    recovery_csv: Path | str | None = None,
) -> None:
    """Entry point of the evaluation of one (grid, setup) from its kept members' (weights, info)
    files.

    Writes ``metrics_csv`` (per member and ``ensemble`` rows), ``params_nc``
    (ensemble mean and std of every parameter on the grid) with one GeoTIFF per
    key parameter beside it (``<params_nc stem>.<name>.tif``), ``simulated_nc``
    (ensemble-mean outputs on the test cells), ``maps_nc`` (per-cell temporal
    skill of the ensemble mean) and, given ``truth_nc``, ``recovery_csv``.
    """
    if not members:
        raise ValueError(f"{grid}/{setup}: no members to evaluate")
    if (truth_nc is None) != (recovery_csv is None):
        raise ValueError(
            f"{grid}/{setup}: truth_nc and recovery_csv go together "
            f"(got {truth_nc}, {recovery_csv})"
        )
    with xr.open_dataset(driver_path) as opened:
        driver = opened.load()
    _check_driver(driver, grid, driver_path)
    ensemble = run_members(driver, members, setup)
    write_csv(metrics_table(ensemble.metrics, grid, setup), metrics_csv)
    attrs = {"grid": grid, "setup": setup, "members": " ".join(map(str, ensemble.numbers))}
    _write_maps(driver, ensemble, attrs, Path(params_nc), Path(simulated_nc), Path(maps_nc))
    if truth_nc is not None and recovery_csv is not None:
        with xr.open_dataset(truth_nc) as truth:
            true = parameters_at_cells(truth.load(), driver, truth_nc)
        estimate = {
            n: parameters.ensemble_mean(n, [p[n] for p in ensemble.params])
            for n in parameters.NAMES
        }
        recovery = parameter_recovery(estimate, true).assign(grid=grid, setup=setup)
        write_csv(recovery[list(RECOVERY_COLUMNS)], recovery_csv)
    logger.info("%s/%s: evaluated members %s", grid, setup, attrs["members"])


def evaluate_selected(
    driver_path: Path | str,
    selected: Path | str,
    weights: Sequence[Path | str],
    infos: Sequence[Path | str],
    grid: str,
    setup: str,
    truth: Path | str | None,
    outputs: Any,
) -> None:
    """Entry point of the evaluate_setup rule: :func:`evaluate_setup` on the members kept in
    ``selected``.

    Args:
        selected: JSON of the select_members rule, ``{"kept": [member numbers], ...}``.
        weights, infos: the files of every trained member, in the same order.
        truth: the twin's true parameters on the grid, or None for a real study;
            without it ``recovery`` is written as a table with its header only.
        outputs: names ``metrics``, ``recovery``, ``maps``, ``simulated``, ``params``
            (attributes, as Snakemake's output, or keys).
    """
    if len(weights) != len(infos):
        raise ValueError(f"{selected}: {len(weights)} weight files but {len(infos)} info files")
    kept = kept_files(selected, list(zip(weights, infos)))
    out = {
        k: Path(getattr(outputs, k) if hasattr(outputs, k) else outputs[k])
        for k in ("metrics", "recovery", "maps", "simulated", "params")
    }
    evaluate_setup(
        driver_path,
        kept,
        grid,
        setup,
        metrics_csv=out["metrics"],
        params_nc=out["params"],
        simulated_nc=out["simulated"],
        maps_nc=out["maps"],
        truth_nc=truth or None,
        recovery_csv=out["recovery"] if truth else None,
    )
    if not truth:
        write_csv(pd.DataFrame(columns=list(RECOVERY_COLUMNS)), out["recovery"])


def _write_maps(
    driver: xr.Dataset,
    ensemble: Ensemble,
    attrs: dict[str, str],
    params_nc: Path,
    simulated_nc: Path,
    maps_nc: Path,
) -> None:
    where = f"{attrs['setup']} on {attrs['grid']}"
    maps = parameter_maps(driver, ensemble.params)
    maps.attrs |= attrs | {"title": f"hybridland parameters, {where}"}
    write_netcdf(maps, params_nc)
    for name in parameters.KEY_PARAMETERS:
        write_geotiff(maps[name], params_nc.with_suffix(f".{name}.tif"))
    simulated = simulated_dataset(driver, ensemble.mean_sim, driver.test.values)
    simulated.attrs |= attrs | {
        "title": f"hybridland ensemble-mean simulation on the test cells, {where}"
    }
    write_netcdf(simulated, simulated_nc)
    skill = per_cell_temporal_r2(driver, ensemble.mean_sim)
    skill.attrs |= attrs | {
        "title": f"hybridland per-cell temporal skill of the ensemble mean, {where}"
    }
    write_netcdf(skill, maps_nc)


def _gather(
    paths: Iterable[Path | str], destination: Path | str, columns: Sequence[str], by: list[str]
) -> None:
    paths = list(paths)
    if not paths:
        raise ValueError(f"{destination}: no tables to gather")
    tables = []
    for path in paths:
        table = pd.read_csv(path, dtype={"member": str} if "member" in columns else None)
        if list(table.columns) != list(columns):
            raise ValueError(f"{path}: columns {list(table.columns)} differ from {list(columns)}")
        tables.append(table)
    write_csv(_sort_rows(pd.concat(tables, ignore_index=True), by), destination)


def gather_metrics(paths: Iterable[Path | str], destination: Path | str) -> None:
    """Concatenate per-setup metric tables, sorted by grid, setup, member, metric, variable,
    split."""
    by = ["grid", "setup", "member", "metric", "variable", "split"]
    _gather(paths, destination, METRIC_COLUMNS, by)


def gather_recovery(paths: Iterable[Path | str], destination: Path | str) -> None:
    """Concatenate per-setup recovery tables, sorted by grid, setup and parameter (table order)."""
    _gather(paths, destination, RECOVERY_COLUMNS, ["grid", "setup", "parameter"])
