"""Dynamic hybrids on FLUXNET16: trained across sites (the hybrid's folds) and per site.

A dynamic hybrid is a static part, which gives all 40 parameters as today, and a
network of :mod:`hybridland.model.dynamic` that acts month by month (``dyn``: an LSTM
sets selected parameters; ``beta-nn``: the water stress; ``gppet-nn``: GPP and ET).

- Across sites the static part is the spatialization network on the predictors of
  ``static_setup``; each (scheme, fold, member) trains on the fold's training sites'
  training years, all runs vmapped in one program, full-batch Adam. Held-out sites are
  predicted as the static hybrids' are (ensemble mean of the kept members).
- Per site the static part is one raw parameter vector per site, as the per-site
  calibration (same start, steps and learning rate), with its own network; sites are
  vmapped and each trains on its own training years only.

The network inputs are the month's forcing, standardised over the run's training cells
and training months, plus (for the LSTM) the run's standardised static predictors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from flax import nnx

from hybridland.io import atomic_path, write_netcdf
from hybridland.model import dalec, dynamic, loss, network, parameters
from hybridland.studies.fluxnet import calibrate, crossval
from hybridland.studies.fluxnet.sites import CALIBRATION, FluxnetError
from hybridland.training import batches, setups, train

logger = logging.getLogger(__name__)

SIMULATED = ("lai", "gpp", "ET", "nee", "nbe")
CHUNK = 50  # Adam steps per jitted call (progress is logged between calls)


@dataclass(frozen=True)
class DynamicOptions:
    """The ``fluxnet.dynamic`` section (see the config schema)."""

    models: tuple[str, ...]
    static_setup: str
    parameters: tuple[str, ...]
    hidden: int
    steps: int
    learning_rate: float
    members: int
    keep_best: int
    dev_years: int

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> DynamicOptions:
        return cls(
            tuple(section["models"]),
            str(section["static_setup"]),
            tuple(section["parameters"]),
            int(section["hidden"]),
            int(section["steps"]),
            float(section["learning_rate"]),
            int(section["members"]),
            int(section["keep_best"]),
            int(section["dev_years"]),
        )

    def kind(self, name: str) -> dynamic.Kind:
        """The kind of a model named by :func:`hybridland.training.setups.dynamic_setup`."""
        for kind in self.models:
            if setups.dynamic_setup(kind, self.static_setup) == name:
                return kind
        known = [setups.dynamic_setup(k, self.static_setup) for k in self.models]
        raise FluxnetError(f"fluxnet.dynamic: unknown model {name!r}; configured: {known}")


class Shared(NamedTuple):
    """What every run reads: forcing and observations of all sites, (time, cell, 1)."""

    met: dalec.Met
    climate: dalec.Climate
    observations: dict[str, loss.Observation]


class RunInputs(NamedTuple):
    """One run's inputs (stacked over runs on a leading axis when vmapped)."""

    index: jax.Array  # (n,) training cells, padded by repeating the first
    valid: jax.Array  # (n,) 1 for a training cell, 0 for padding
    features: jax.Array  # (cell, n_features) standardised static predictors
    lat_feature: jax.Array  # (cell,) standardised LAT_SIGMOID
    forcing: jax.Array  # (time, cell, k) standardised monthly inputs


def _raw_static(theta: Mapping[str, Any], run: RunInputs, index: jax.Array) -> dict[str, Any]:
    """Unbounded reals per group on the cells ``index``, (n, n_group)."""
    if "net" in theta:
        return network.raw_outputs(theta["net"], run.features[index], run.lat_feature[index])
    return {g: jnp.broadcast_to(v, (index.shape[0],) + v.shape) for g, v in theta["raw"].items()}


def _static_raw_of(raw: Mapping[str, jax.Array], names: Sequence[str]) -> jax.Array:
    """The named parameters' columns of the per-group raw outputs, (n, len(names))."""
    columns = []
    for name in names:
        group = parameters.BY_NAME[name].group
        columns.append(raw[group][..., parameters.group_names(group).index(name)])
    return jnp.stack(columns, axis=-1)


def hybrid(
    kind: dynamic.Kind,
    names: tuple[str, ...],
    graph: Any,
    theta: Mapping[str, Any],
    run: RunInputs,
    index: jax.Array,
) -> tuple[dict[str, jax.Array], dict[str, Any]]:
    """Static parameters (n, 1) of the cells ``index`` and the dynamics DALEC runs them with."""
    raw = _raw_static(theta, run, index)
    params = {k: v[:, None] for k, v in calibrate.raw_to_physical(raw).items()}
    module = nnx.merge(graph, theta["dynamic"])
    forcing = run.forcing[:, index]
    if kind == "dyn":
        statics = jnp.broadcast_to(
            run.features[index], forcing.shape[:1] + run.features[index].shape
        )
        inputs = jnp.concatenate([forcing, statics], axis=-1)
        varying = dynamic.dynamic_parameters(module, inputs, _static_raw_of(raw, names), names)
        return params, {"dynamic": {k: v[..., None] for k, v in varying.items()}}
    hooks = dynamic.beta_hook(module) if kind == "beta-nn" else dynamic.gpp_et_hook(module)
    return params, {"hooks": hooks, "hook_inputs": forcing[:, :, None, :]}


def _cells(shared: Shared, index: jax.Array, valid: jax.Array) -> Shared:
    """The cells ``index`` of the shared arrays; padded cells get observation weight 0."""
    return Shared(
        jax.tree_util.tree_map(lambda x: x[:, index], shared.met),
        jax.tree_util.tree_map(lambda x: x[index], shared.climate),
        {
            k: loss.Observation(o.value[:, index], o.mask[:, index] * valid[None, :, None])
            for k, o in shared.observations.items()
        },
    )


def run_loss(
    kind: dynamic.Kind,
    names: tuple[str, ...],
    graph: Any,
    config: loss.LossConfig,
    theta: Mapping[str, Any],
    run: RunInputs,
    shared: Shared,
) -> jax.Array:
    """The training loss of one run: its training cells' training months only."""
    params, dynamics = hybrid(kind, names, graph, theta, run, run.index)
    cells = _cells(shared, run.index, run.valid)
    return loss.total_loss(params, cells.met, cells.climate, cells.observations, config, **dynamics)


def make_training(
    kind: dynamic.Kind,
    names: tuple[str, ...],
    graph: Any,
    config: loss.LossConfig,
    optimiser: optax.GradientTransformation,
    steps: int,
):
    """Jitted ``steps`` full-batch Adam steps of every run (vmapped over the leading run axis).

    A step whose loss or gradient is not finite is not applied.
    """

    def one(theta, opt_state, run: RunInputs, shared: Shared):
        def step(carry, _):
            theta, opt_state = carry
            value, grads = jax.value_and_grad(
                lambda t: run_loss(kind, names, graph, config, t, run, shared)
            )(theta)
            updates, new_opt = optimiser.update(grads, opt_state, theta)
            finite = jnp.isfinite(value) & jnp.all(
                jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
            )
            new = (optax.apply_updates(theta, updates), new_opt)
            return jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, carry), value

        (theta, opt_state), values = jax.lax.scan(step, (theta, opt_state), None, length=steps)
        return theta, opt_state, values, run_loss(kind, names, graph, config, theta, run, shared)

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None)))


def make_prediction(kind: dynamic.Kind, names: tuple[str, ...], graph: Any):
    """Jitted simulation of every site's whole record by each run, (run, time, cell, 1)."""

    def one(theta, run: RunInputs, shared: Shared):
        index = jnp.arange(run.features.shape[0])
        params, dynamics = hybrid(kind, names, graph, theta, run, index)
        out = dalec.simulate(params, shared.met, shared.climate, outputs=SIMULATED, **dynamics)
        return out.outputs, params

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None)))


def shared_inputs(drv: xr.Dataset) -> Shared:
    if not np.array_equal(drv.patch.values, drv.patch_id.values):
        raise FluxnetError("the FLUXNET driver must hold one site per patch, in cell order")
    packed = batches.pack(drv, drv.patch_id.values)
    return Shared(packed.met, packed.climate, packed.observations)


def dev_months(drv: xr.Dataset, years: int) -> np.ndarray:
    """The last ``years`` training years of every site, (time, cell) bool."""
    first_test = np.argmax(drv.test_month.values, axis=1)  # (cell,)
    start = first_test - 12 * years
    if np.any(start < 12):
        raise FluxnetError(
            f"fluxnet.dynamic.dev_years ({years}) leaves some site less than a year to train on"
        )
    month = np.arange(drv.sizes["time"])[:, None]
    return (month >= start[None, :]) & (month < first_test[None, :])


def split_dev(shared: Shared, dev: np.ndarray) -> tuple[Shared, Shared]:
    """The observations as two sets: without the dev months (training) and only them (dev)."""

    def masked(keep: np.ndarray) -> Shared:
        weight = jnp.asarray(keep, jnp.float32)[:, :, None]
        observations = {k: o._replace(mask=o.mask * weight) for k, o in shared.observations.items()}
        return shared._replace(observations=observations)

    return masked(~dev), masked(dev)


def observation_sets(drv: xr.Dataset, years: int) -> tuple[Shared, Shared | None]:
    """Training and dev observations of every site (no dev set when ``years`` is 0)."""
    shared = shared_inputs(drv)
    return split_dev(shared, dev_months(drv, years)) if years else (shared, None)


def run_inputs(drv: xr.Dataset, shared: Shared, raw: np.ndarray, train_cells: np.ndarray):
    """One run's inputs: ``raw`` static columns (LAT_SIGMOID last) and the forcing, standardised
    over the training cells (and, for the forcing, their training months)."""
    z = network.Standardizer.fit(raw[train_cells]).apply(raw)
    forcing = np.asarray(dynamic.forcing_columns(shared.met))[:, :, 0]  # (time, cell, k)
    months = (~drv.test_month.values.T) & train_cells[None, :]  # (time, cell)
    scale = network.Standardizer.fit(forcing[months])
    index = np.flatnonzero(train_cells)
    return RunInputs(
        index=np.int32(index),
        valid=np.ones(index.size, np.float32),
        features=np.float32(z[:, :-1]),
        lat_feature=np.float32(z[:, -1]),
        forcing=np.float32(scale.apply(forcing)),
    )


def _stack(runs: Sequence[RunInputs]) -> RunInputs:
    """Runs stacked on a leading axis, training cells padded to the longest run."""
    longest = max(r.index.size for r in runs)
    padded = [
        r._replace(
            index=np.resize(r.index, longest),
            valid=np.concatenate([r.valid, np.zeros(longest - r.index.size, np.float32)]),
        )
        for r in runs
    ]
    return RunInputs(*(jnp.asarray(np.stack(x)) for x in zip(*padded)))


def _n_inputs(kind: dynamic.Kind, run: RunInputs) -> int:
    """Per-month inputs of the network: the forcing, and the static predictors for the LSTM."""
    k = run.forcing.shape[-1]
    return k + run.features.shape[-1] if kind == "dyn" else k


def _initial(
    kind: dynamic.Kind, key: jax.Array, run: RunInputs, options: DynamicOptions, static: Any
):
    graph, state = dynamic.create(
        kind, key, _n_inputs(kind, run), options.hidden, len(options.parameters)
    )
    return graph, {**static, "dynamic": state}


def _label(part: str) -> str:
    return "dynamic" if part == "dynamic" else "static"


def _optimiser(static_rate: float, dynamic_rate: float) -> optax.GradientTransformation:
    """Adam with one learning rate for the static part and one for the network."""

    def labels(theta):
        return {
            k: jax.tree_util.tree_map(lambda _, part=k: _label(part), v) for k, v in theta.items()
        }

    return optax.multi_transform(
        {"static": optax.adam(static_rate), "dynamic": optax.adam(dynamic_rate)}, labels
    )


def fit(
    kind: dynamic.Kind,
    options: DynamicOptions,
    graph: Any,
    thetas: Sequence[Any],
    runs: Sequence[RunInputs],
    shared: tuple[Shared, Shared | None],
    config: loss.LossConfig,
    optimiser: optax.GradientTransformation,
    steps: int,
    label: str,
):
    """Train every run in one vmapped program on ``shared[0]``.

    With dev observations (``shared[1]``), every run keeps the weights of its lowest dev loss
    (checked every CHUNK steps) and reports that loss; else its last weights and training loss.
    Returns stacked weights, stacked inputs and the reported losses.
    """
    training, dev = shared
    theta = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *thetas)
    stacked = _stack(runs)
    opt_state = jax.vmap(optimiser.init)(theta)
    programs = {}  # steps per call -> jitted program, compiled once
    dev_loss = make_loss(kind, options.parameters, graph, config)
    best, best_theta = np.full(len(runs), np.inf), theta
    done, final = 0, None
    while done < steps:
        chunk = min(CHUNK, steps - done)
        if chunk not in programs:
            programs[chunk] = make_training(
                kind, options.parameters, graph, config, optimiser, chunk
            )
        theta, opt_state, values, final = programs[chunk](theta, opt_state, stacked, training)
        done += chunk
        if dev is not None:
            value = np.asarray(dev_loss(theta, stacked, dev), np.float64)
            better = value < best  # NaN never is
            best = np.where(better, value, best)
            best_theta = _select(better, theta, best_theta)
        logger.info(
            "%s step %d/%d: median training loss %.5g, median best dev loss %.5g, %d runs",
            label,
            done,
            steps,
            float(np.nanmedian(np.asarray(values[:, -1]))),
            float(np.median(best)),
            len(runs),
        )
    if dev is None:
        return theta, stacked, np.asarray(final, np.float64)
    return best_theta, stacked, best


def _select(which: np.ndarray, new: Any, old: Any) -> Any:
    """Per run (leading axis): ``new`` where ``which``, else ``old``."""
    return jax.tree_util.tree_map(
        lambda n, o: jnp.where(jnp.asarray(which).reshape((-1,) + (1,) * (n.ndim - 1)), n, o),
        new,
        old,
    )


def make_loss(kind: dynamic.Kind, names: tuple[str, ...], graph: Any, config: loss.LossConfig):
    """Jitted loss of every run (vmapped) on the given observations."""

    def one(theta, run: RunInputs, shared: Shared):
        return run_loss(kind, names, graph, config, theta, run, shared)

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None)))


def predict(
    kind: dynamic.Kind,
    options: DynamicOptions,
    graph: Any,
    theta: Any,
    stacked: RunInputs,
    shared: Shared,
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """Per run: target series (cell, time) and static physical parameters (cell,)."""
    outputs, params = make_prediction(kind, options.parameters, graph)(theta, stacked, shared)
    outputs = {k: np.asarray(v)[..., 0] for k, v in outputs.items()}
    params = {k: np.asarray(v)[..., 0] for k, v in params.items()}
    n = next(iter(outputs.values())).shape[0]
    series = [crossval.target_series({k: v[i] for k, v in outputs.items()}) for i in range(n)]
    return series, [{k: v[i] for k, v in params.items()} for i in range(n)]


def crossval_dynamic(
    drv: xr.Dataset,
    name: str,
    options: DynamicOptions,
    schemes: Sequence[str],
    seed: int,
    training: train.TrainOptions,
) -> tuple[xr.Dataset, list[dict[str, Any]]]:
    """Held-out predictions of a dynamic hybrid under every fold, and the runs' record."""
    kind = options.kind(name)
    sets = observation_sets(drv, options.dev_years)
    shared = sets[0]
    raw = train.raw_features(drv, options.static_setup, seed)
    runs = crossval.fold_runs(drv, schemes, range(options.members))
    inputs, thetas, graph = [], [], None
    for r in runs:
        run = run_inputs(drv, shared, raw, crossval.training_cells(r.held_out))
        key = train.member_key(seed, f"{name}:{r.scheme}:{r.fold}", r.member)
        net = network.init_network(
            key, raw.shape[1] - 1, width=training.width, depth=training.depth
        )
        graph, theta = _initial(kind, jax.random.fold_in(key, 1), run, options, {"net": net})
        inputs.append(run)
        thetas.append(theta)
    optimiser = _optimiser(training.learning_rate, options.learning_rate)
    theta, stacked, final = fit(
        kind, options, graph, thetas, inputs, sets, training.loss, optimiser, options.steps, name
    )
    kept = crossval.kept_runs(runs, final, options.keep_best)
    series, params = predict(kind, options, graph, theta, stacked, shared)
    dataset = crossval.heldout_dataset(drv, name, runs, kept, series, params)
    return dataset, crossval.run_records(runs, final, kept)


def calibrate_dynamic(
    drv: xr.Dataset,
    name: str,
    options: DynamicOptions,
    calibration: calibrate.CalibrationOptions,
    config: loss.LossConfig,
    seed: int,
) -> xr.Dataset:
    """Per-site calibration of a dynamic hybrid: every site its own parameters and network."""
    kind = options.kind(name)
    sets = observation_sets(drv, options.dev_years)
    shared = sets[0]
    raw = train.raw_features(drv, options.static_setup, seed)
    zeros = {g: jnp.zeros(len(parameters.group_names(g)), jnp.float32) for g in parameters.GROUPS}
    inputs, thetas, graph = [], [], None
    for c, site in enumerate(drv.site.values):
        run = run_inputs(drv, shared, raw, np.arange(drv.sizes["cell"]) == c)
        key = train.member_key(seed, f"{name}:{CALIBRATION}:{site}", 0)
        graph, theta = _initial(kind, key, run, options, {"raw": zeros})
        inputs.append(run)
        thetas.append(theta)
    optimiser = _optimiser(calibration.learning_rate, options.learning_rate)
    theta, stacked, final = fit(
        kind, options, graph, thetas, inputs, sets, config, optimiser, calibration.steps, name
    )
    bad = [str(s) for s, v in zip(drv.site.values, final) if not np.isfinite(v)]
    if bad:
        raise FluxnetError(f"{name} per-site calibration: loss not finite at sites {bad}")
    series, params = predict(kind, options, graph, theta, stacked, shared)
    own = np.arange(drv.sizes["cell"])
    sim = {t: np.stack([series[c][t][c] for c in own]) for t in series[0]}
    physical = {k: np.array([params[c][k][c] for c in own]) for k in parameters.NAMES}
    return calibrate.calibration_dataset(
        drv,
        name,
        sim,
        physical,
        final,
        {"steps": calibration.steps, "learning_rate": calibration.learning_rate},
    )


def dynamic_files(
    driver_path: Path | str,
    name: str,
    options: DynamicOptions,
    schemes: Sequence[str],
    seed: int,
    training: train.TrainOptions,
    calibration: calibrate.CalibrationOptions,
    predictions: Path | str,
    runs: Path | str,
    per_site: Path | str,
) -> None:
    """Entry point of the fluxnet_dynamic rule: one dynamic hybrid across sites and per site."""
    with xr.open_dataset(driver_path) as data:
        drv = data.load()
    dataset, record = crossval_dynamic(drv, name, options, schemes, seed, training)
    write_netcdf(dataset, predictions)
    with atomic_path(runs) as tmp:
        tmp.write_text(json.dumps({"setup": name, "runs": record}, indent=1, allow_nan=True))
    write_netcdf(calibrate_dynamic(drv, name, options, calibration, training.loss, seed), per_site)
