"""Pure machine-learning baselines on the hybrid's drivers, splits, targets and metrics.

``LSTM`` (per cell), ``ConvLSTM`` (over the grid) and ``ConvLSTM+DALEC`` (a ConvLSTM
that also reads the trained hybrid's simulated LAI, SIF and ET and learns a
correction of them) map the forcing (:data:`hybridland.contract.FORCING`) and the
static predictors of the full setup, standardised on the training cells, to the
fine targets lai, sif and et, standardised alike. Observations and their masks are
those the hybrid's loss reads (:func:`hybridland.training.batches.observations`);
the coarse and static targets (NBE, EWT, biomass, SOM) have no per-cell monthly
series and are not seen. Test patches are the driver's; dev patches are drawn as a
hybrid member draws them and stop training early (AdamW, ``optax.adamw``); the
kept weights are those of the best dev epoch. Skill comes from the hybrid's own
functions (:func:`hybridland.training.evaluate.member_metrics`).

The ConvLSTM trains on windows of ``window`` months that start from a zero state
(XLA on CPU runs a convolution inside a loop slowly, so each window is unrolled),
each on a random square crop of ``crop`` pixels, and predicts the whole grid in
consecutive windows from a zero state, as it trained.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import xarray as xr

from hybridland.contract import FORCING, SITE_TARGETS, TARGETS
from hybridland.data.driver import parameters_at_cells
from hybridland.io import atomic_path, write_csv
from hybridland.model import network, recurrent, targets
from hybridland.training import batches, evaluate, setups, train

logger = logging.getLogger(__name__)

BASELINES = ("LSTM", "ConvLSTM", "ConvLSTM+DALEC")
TWIN_TARGETS = ("lai", "sif", "et")  # the fine targets with a monthly series per cell


@dataclass(frozen=True)
class Options:
    epochs: int
    hidden: int
    filters: int
    kernel: int
    learning_rate: float
    weight_decay: float
    patience: int  # epochs without a better dev loss before training stops; 0: off
    cells_per_step: int  # LSTM: cells per AdamW step
    window: int  # ConvLSTM: months per training window
    crop: int  # ConvLSTM: pixels per side of a training crop; 0: the whole grid
    dev_fraction: float

    @classmethod
    def from_config(cls, section: Mapping[str, Any], model: str, dev_fraction: float) -> Options:
        """From the config's ``baselines`` section (epochs and learning rate of ``model``) and
        ``training.dev_fraction``."""
        per_model = ("epochs", "learning_rate")
        for key in per_model:
            if model not in section[key]:
                raise ValueError(f"baselines.{key} has no entry for {model}")
        shared = [k for k in cls.__dataclass_fields__ if k not in (*per_model, "dev_fraction")]
        return cls(
            **{k: section[k][model] for k in per_model},
            **{k: section[k] for k in shared},
            dev_fraction=dev_fraction,
        )


# ---- data


class Scale(NamedTuple):
    """Per-column mean and scale of standardised targets, (k,)."""

    mean: np.ndarray
    std: np.ndarray


class Data(NamedTuple):
    """Inputs, standardised targets and masks, (cell, time, ...)."""

    inputs: np.ndarray  # (cell, time, feature)
    values: np.ndarray  # (cell, time, target), standardised, 0 where unobserved
    observed: np.ndarray  # (cell, time, target) observation weight (0: not observed)
    scale: Scale
    names: tuple[str, ...]  # targets, in the last axis's order


def full_setup(groups: Sequence[str]) -> str:
    """The setup with every predictor group of the study (its baselines' predictors)."""
    return setups.setup_name(groups)


def split_cells(
    driver: xr.Dataset, dev_fraction: float, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Train, dev and test cells (bool, cell) and the member-style record of the patches.

    Test patches are the driver's; dev patches a share of the others, drawn as a hybrid
    member draws its own.
    """
    test = np.asarray(driver.test.values, bool)
    candidates = np.unique(driver.patch.values[~test])
    dev = train.dev_patches(candidates, dev_fraction, seed)
    info = {"train_patches": np.setdiff1d(candidates, dev).tolist(), "dev_patches": dev.tolist()}
    return evaluate.split_masks(driver, info), info


def standardise(values: np.ndarray, weight: np.ndarray, cells: np.ndarray) -> tuple[Any, Any]:
    """Mean and scale per last-axis column of (cell, time, k) values with weight > 0 on ``cells``.

    A column that is constant there standardises to 0 (scale 1).
    """
    keep = (weight > 0) & cells[:, None, None]
    count = np.maximum(keep.sum(axis=(0, 1)), 1)
    mean = np.where(keep, values, 0.0).sum(axis=(0, 1)) / count
    var = np.where(keep, (values - mean) ** 2, 0.0).sum(axis=(0, 1)) / count
    std = np.sqrt(var)
    return mean, np.where(std > 0, std, 1.0)


def forcing_and_predictors(
    driver: xr.Dataset, predictors: Sequence[str], cells: np.ndarray
) -> np.ndarray:
    """Forcing and the static predictors repeated over time, standardised on ``cells``,
    (cell, time, feature)."""
    forcing = np.stack(
        [driver[f].transpose("cell", "time").values.astype(np.float64) for f in FORCING], axis=-1
    )
    mean, std = standardise(forcing, np.isfinite(forcing), cells)
    forcing = np.nan_to_num((forcing - mean) / std)
    static = network.Standardizer.fit(
        np.stack([driver[p].values for p in predictors], -1)[cells]
    ).apply(np.stack([driver[p].values for p in predictors], -1))
    repeated = np.broadcast_to(static[:, None, :], forcing.shape[:2] + static.shape[-1:])
    return np.concatenate([forcing, repeated], axis=-1).astype(np.float32)


def target_data(
    driver: xr.Dataset, names: Sequence[str], inputs: np.ndarray, cells: np.ndarray
) -> Data:
    """The observations of ``names`` as the loss reads them, standardised on ``cells``."""
    observations = batches.observations(driver)
    missing = [n for n in names if n not in observations]
    if missing:
        raise ValueError(f"the driver lacks targets {missing}")
    values = np.stack([observations[n][0].T for n in names], axis=-1).astype(np.float64)
    weight = np.stack([observations[n][1].T for n in names], axis=-1).astype(np.float32)
    mean, std = standardise(values, weight, cells)
    z = np.where(weight > 0, (values - mean) / std, 0.0).astype(np.float32)
    return Data(inputs, z, weight, Scale(mean, std), tuple(names))


def simulated_channels(
    sim: Mapping[str, np.ndarray], data: Data, names: Sequence[str]
) -> np.ndarray:
    """A simulation's counterparts of ``names`` (time, cell) on the targets' standardised scale,
    (cell, time, k)."""
    stack = np.stack([np.asarray(sim[targets.TERMS[n].outputs[0]]).T for n in names], -1)
    index = [data.names.index(n) for n in names]
    return ((stack - data.scale.mean[index]) / data.scale.std[index]).astype(np.float32)


def unstandardise(prediction: np.ndarray, data: Data) -> np.ndarray:
    """Standardised predictions (..., k) in the targets' units."""
    return prediction * data.scale.std + data.scale.mean


def to_outputs(prediction: np.ndarray, data: Data) -> dict[str, np.ndarray]:
    """Standardised predictions (cell, time, k) as DALEC-named outputs in physical units,
    (time, cell), as the evaluation reads simulations."""
    physical = unstandardise(prediction, data)
    return {
        targets.TERMS[n].outputs[0]: physical[..., i].T.astype(np.float64)
        for i, n in enumerate(data.names)
    }


# ---- training


class Fitted(NamedTuple):
    params: Any
    history: list[tuple[float, float]]  # (mean training loss, dev loss) per epoch
    kept_epoch: int  # 1-based epoch whose parameters are kept


def early_stopping(
    params: Any,
    step: Callable[[Any, Any, Any], tuple[Any, Any, jax.Array]],
    optimiser: optax.GradientTransformation,
    batches_of: Callable[[int], Iterable[Any]],
    dev_loss: Callable[[Any], float] | None,
    epochs: int,
    patience: int,
) -> Fitted:
    """AdamW epochs of ``step(params, opt_state, batch)`` over ``batches_of(epoch)``.

    With ``dev_loss``, keeps the parameters of the first epoch with the lowest dev loss
    and stops after ``patience`` epochs without a better one (0: never); without it,
    runs every epoch and keeps the last.
    """
    opt_state = optimiser.init(params)
    kept, best, best_epoch, history = params, np.inf, 0, []
    for epoch in range(epochs):
        losses = []
        for batch in batches_of(epoch):
            params, opt_state, value = step(params, opt_state, batch)
            losses.append(float(value))
        dev = dev_loss(params) if dev_loss is not None else float("nan")
        history.append((float(np.mean(losses)), dev))
        if dev_loss is None or dev < best:
            kept, best, best_epoch = params, dev, epoch
        elif patience and epoch - best_epoch >= patience:
            break
    return Fitted(kept, history, best_epoch + 1)


def _step(loss: Callable, optimiser: optax.GradientTransformation) -> Callable:
    def step(params, opt_state, batch):
        value, grads = jax.value_and_grad(loss)(params, *batch)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return jax.jit(step)


class Program(NamedTuple):
    """A model's jitted training step, loss and prediction."""

    model: Any
    optimiser: optax.GradientTransformation
    step: Callable
    loss: Callable
    apply: Callable


@functools.cache
def lstm_program(hidden: int, outputs: int, learning_rate: float, weight_decay: float) -> Program:
    """The LSTM's program, compiled once per process for every fold of the same shapes."""
    model = recurrent.CellLSTM(hidden, outputs)
    optimiser = optax.adamw(learning_rate, weight_decay=weight_decay)

    def loss(params, x, y, weight):
        return recurrent.masked_mse(model.apply(params, x), y, weight)

    return Program(model, optimiser, _step(loss, optimiser), jax.jit(loss), jax.jit(model.apply))


def fit_lstm(
    data: Data, train_cells: np.ndarray, dev_cells: np.ndarray | None, options: Options, seed: int
) -> tuple[Program, Fitted]:
    """A per-cell LSTM on the training cells' observations, early-stopped on the dev cells'."""
    program = lstm_program(
        options.hidden, len(data.names), options.learning_rate, options.weight_decay
    )
    arrays = tuple(jnp.asarray(a) for a in (data.inputs, data.values, data.observed))
    train_index = np.flatnonzero(train_cells)
    params = program.model.init(jax.random.key(seed), arrays[0][:1])
    per_step = min(options.cells_per_step, train_index.size)

    def batches_of(epoch: int) -> Iterable[Any]:
        order = train.epoch_order(train_index.size, per_step, seed, epoch)
        return [tuple(a[train_index[row]] for a in arrays) for row in order]

    dev_loss = None
    if dev_cells is not None and dev_cells.any():
        dev = tuple(a[np.flatnonzero(dev_cells)] for a in arrays)
        dev_loss = lambda p: float(program.loss(p, *dev))
    fitted = early_stopping(
        params,
        program.step,
        program.optimiser,
        batches_of,
        dev_loss,
        options.epochs,
        options.patience,
    )
    return program, fitted


def predict_lstm(program: Program, params: Any, inputs: np.ndarray) -> np.ndarray:
    """Standardised predictions (cell, time, k) of every cell."""
    return np.asarray(program.apply(params, jnp.asarray(inputs)))


class Grid(NamedTuple):
    """Cell arrays on the grid: (time, y, x, ...), and the land mask (y, x)."""

    inputs: np.ndarray
    values: np.ndarray
    observed: np.ndarray
    land: np.ndarray


def on_grid(driver: xr.Dataset, per_cell: np.ndarray) -> np.ndarray:
    """(cell, time, k) -> (time, y, x, k), zero off the driver's cells."""
    out = np.zeros((per_cell.shape[1], driver.sizes["y"], driver.sizes["x"], per_cell.shape[2]))
    out[:, driver.cell_y.values, driver.cell_x.values] = per_cell.transpose(1, 0, 2)
    return out.astype(np.float32)


def to_grid(driver: xr.Dataset, data: Data) -> Grid:
    """The data on the driver's grid; land is where the driver has a cell."""
    land = np.zeros((driver.sizes["y"], driver.sizes["x"]), bool)
    land[driver.cell_y.values, driver.cell_x.values] = True
    return Grid(*(on_grid(driver, a) for a in (data.inputs, data.values, data.observed)), land)


def windows(series: jax.Array, length: int) -> jax.Array:
    """(time, ...) -> (window, length, ...) from month 0, the last padded with zeros."""
    count = -(-series.shape[0] // length)
    pad = [(0, count * length - series.shape[0])] + [(0, 0)] * (series.ndim - 1)
    return jnp.pad(series, pad).reshape(count, length, *series.shape[1:])


def predict_grid(
    model: recurrent.GridConvLSTM, params: Any, inputs: jax.Array, land: jax.Array, length: int
) -> jax.Array:
    """Predictions (time, y, x, k) in consecutive windows of ``length`` months from a zero state."""
    cut = windows(inputs, length)
    out = jax.lax.map(lambda w: model.apply(params, w, land), cut)
    return out.reshape(-1, *out.shape[2:])[: inputs.shape[0]]


def fit_convlstm(
    grid: Grid,
    train_cells: np.ndarray,
    dev_cells: np.ndarray,
    driver: xr.Dataset,
    options: Options,
    seed: int,
    residual: np.ndarray | None = None,
) -> tuple[recurrent.GridConvLSTM, Fitted]:
    """A ConvLSTM over the grid, loss on the training cells, early-stopped on the dev cells.

    ``residual`` (time, y, x, k): a prediction the network's output is added to (it then
    learns a correction of it).
    """
    k = grid.values.shape[-1]
    model = recurrent.GridConvLSTM(options.filters, k, options.kernel, unroll=options.window)
    cells = np.zeros(grid.land.shape + (2,), np.float32)
    for i, chosen in enumerate((train_cells, dev_cells)):
        cells[driver.cell_y.values[chosen], driver.cell_x.values[chosen], i] = 1.0
    x, y, land = jnp.asarray(grid.inputs), jnp.asarray(grid.values), jnp.asarray(grid.land)
    base = jnp.zeros_like(y) if residual is None else jnp.asarray(residual)
    weight = jnp.asarray(grid.observed)
    train_w, dev_w = (weight * cells[None, :, :, i, None] for i in range(2))
    params = model.init(jax.random.key(seed), x[: options.window], land)
    length = min(options.window, x.shape[0])

    rows, cols = (min(options.crop or n, n) for n in grid.land.shape)

    def loss(params, start, row, col):
        def w(a):  # the window's months and the crop's pixels
            return jax.lax.dynamic_slice(
                a, (start, row, col) + (0,) * (a.ndim - 3), (length, rows, cols) + a.shape[3:]
            )

        crop_land = jax.lax.dynamic_slice(land, (row, col), (rows, cols))
        return recurrent.masked_mse(
            w(base) + model.apply(params, w(x), crop_land), w(y), w(train_w)
        )

    optimiser = optax.adamw(options.learning_rate, weight_decay=options.weight_decay)
    step = _step(loss, optimiser)

    def batches_of(epoch: int) -> Iterable[Any]:
        """Windows from a random offset, each with as many random crops as tile the grid."""
        rng = np.random.default_rng([seed, epoch])
        starts = np.arange(int(rng.integers(length)), x.shape[0] - length + 1, length)
        crops = -(-grid.land.size // (rows * cols))
        chosen = [
            (
                int(s),
                int(rng.integers(grid.land.shape[0] - rows + 1)),
                int(rng.integers(grid.land.shape[1] - cols + 1)),
            )
            for s in rng.permutation(starts if starts.size else [0])
            for _ in range(crops)
        ]
        return [tuple(jnp.int32(v) for v in c) for c in chosen]

    dev_jit = jax.jit(
        lambda p: recurrent.masked_mse(base + predict_grid(model, p, x, land, length), y, dev_w)
    )
    fitted = early_stopping(
        params,
        step,
        optimiser,
        batches_of,
        lambda p: float(dev_jit(p)),
        options.epochs,
        options.patience,
    )
    return model, fitted


# ---- the twin baselines, end to end


def _cells_of_grid(driver: xr.Dataset, gridded: np.ndarray) -> np.ndarray:
    """(time, y, x, k) -> (cell, time, k)."""
    return gridded[:, driver.cell_y.values, driver.cell_x.values].transpose(1, 0, 2)


def baseline_metrics(
    driver: xr.Dataset,
    outputs: Mapping[str, np.ndarray],
    info: Mapping[str, Any],
    grid: str,
    name: str,
) -> pd.DataFrame:
    """The hybrid's metrics rows for a baseline's outputs (one member, 0, and its ensemble row)."""
    seen = driver.drop_vars(
        [t for t in (*TARGETS, *SITE_TARGETS) if t not in TWIN_TARGETS and t in driver]
    )
    member = evaluate.member_metrics(seen, outputs, info).assign(member=0)
    table = pd.concat([member, evaluate.ensemble_metrics(member)], ignore_index=True)
    return evaluate.metrics_table(table, grid, name)


def run_baseline(
    driver: xr.Dataset,
    name: str,
    groups: Sequence[str],
    options: Options,
    seed: int,
    hybrid_params: xr.Dataset | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Train baseline ``name`` on the driver; its outputs (time, cell) and a record of the run."""
    if name not in BASELINES:
        raise ValueError(f"baselines.models: unknown baseline {name!r}; known: {list(BASELINES)}")
    if (name == "ConvLSTM+DALEC") != (hybrid_params is not None):
        raise ValueError(f"{name}: the hybrid's parameters are needed by ConvLSTM+DALEC only")
    label = f"baseline:{name}"
    masks, info = split_cells(driver, options.dev_fraction, train.member_seed(seed, label, 0))
    predictors = setups.columns(full_setup(groups))
    inputs = forcing_and_predictors(driver, predictors, masks["train"])
    data = target_data(driver, TWIN_TARGETS, inputs, masks["train"])
    key_seed = train.member_seed(seed, label, 1)
    started = time.perf_counter()
    if name == "LSTM":
        program, fitted = fit_lstm(data, masks["train"], masks["dev"], options, key_seed)
        prediction = predict_lstm(program, fitted.params, data.inputs)
    else:
        residual = None
        if hybrid_params is not None:
            sim = evaluate.simulate_cells(
                driver,
                parameters_at_cells(hybrid_params, driver, "hybrid parameters"),
                outputs=tuple(targets.TERMS[n].outputs[0] for n in TWIN_TARGETS),
            )
            simulated = simulated_channels(sim, data, TWIN_TARGETS)
            data = data._replace(inputs=np.concatenate([data.inputs, simulated], axis=-1))
            residual = on_grid(driver, simulated)
        grid = to_grid(driver, data)
        model, fitted = fit_convlstm(
            grid, masks["train"], masks["dev"], driver, options, key_seed, residual
        )
        gridded = predict_grid(
            model, fitted.params, jnp.asarray(grid.inputs), jnp.asarray(grid.land), options.window
        )
        if residual is not None:
            gridded = gridded + residual
        prediction = _cells_of_grid(driver, np.asarray(gridded))
    seconds = time.perf_counter() - started
    logger.info(
        "%s: %d epochs in %.1f s, kept epoch %d",
        name,
        len(fitted.history),
        seconds,
        fitted.kept_epoch,
    )
    record = {
        "baseline": name,
        "predictors": list(predictors),
        "targets": list(TWIN_TARGETS),
        "epochs_run": len(fitted.history),
        "kept_epoch": fitted.kept_epoch,
        "train_seconds": seconds,
        "history": [{"train": t, "dev": d} for t, d in fitted.history],
        **info,
    }
    return to_outputs(prediction, data), record


def baseline_files(
    driver_path: Path | str,
    name: str,
    grid: str,
    groups: Sequence[str],
    options: Options,
    seed: int,
    metrics_csv: Path | str,
    record_json: Path | str,
    hybrid_params_nc: Path | str | None = None,
) -> None:
    """Entry point of a twin baseline's rule: train, predict every cell, score as the hybrid."""
    with xr.open_dataset(driver_path) as opened:
        driver = opened.load()
    if "grid" in driver.attrs and driver.attrs["grid"] != grid:
        raise ValueError(
            f"{driver_path}: driver is for grid {driver.attrs['grid']!r}, not {grid!r}"
        )
    hybrid = None
    if hybrid_params_nc is not None:
        with xr.open_dataset(hybrid_params_nc) as opened:
            hybrid = opened.load()
    outputs, record = run_baseline(driver, name, groups, options, seed, hybrid)
    write_csv(baseline_metrics(driver, outputs, record, grid, name), metrics_csv)
    with atomic_path(record_json) as temporary:
        temporary.write_text(json.dumps(record | {"grid": grid}, indent=1, allow_nan=True))
