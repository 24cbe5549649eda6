"""The training loop: spatialization networks + DALEC993, end to end, several in one program.

A member has its own seed, its own dev split (a share of the non-test patches)
and a network initialised with a key derived from the study seed, its setup
and its number, so results do not depend on the order jobs run in nor on the
members that train beside it (which runs a job trains: :mod:`.jobs`). Each step
takes ``patches_per_step`` patches (padded to a common number of slots) so that
coarse targets are compared with patch aggregates; patch order is reshuffled
every epoch from the member's seed. An epoch runs as one jitted ``lax.scan``.

Checkpoints (safe ``.npz``, no pickle) are written every few epochs; a run that
is killed and started again resumes from its last checkpoint and ends with the
weights an uninterrupted run produces. A non-finite loss re-initialises the
member with a new key derived from its seed, a bounded number of times.

Early stopping (``patience`` > 0): a member whose dev loss has not improved for
``patience`` epochs stops training (its state no longer changes) while the others
go on, and it keeps the weights of its best-dev epoch (so does a member that runs
all its epochs). The best weights ride in the checkpoint; whether a member has
stopped follows from its loss history, which the checkpoint holds too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import json
import logging
import math
import time
import zipfile
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from hybridland.io import atomic_path
from hybridland.model import loss, network
from hybridland.training import batches, checkpoints, optimisation, setups
from hybridland.training.optimisation import RestartStalled, Schedule

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOptions:
    epochs: int
    learning_rate: float
    patches_per_step: int
    dev_fraction: float
    checkpoint_every: int
    max_restarts: int
    width: int
    depth: int
    loss: loss.LossConfig
    patience: int = 0  # epochs without a better dev loss before a member stops; 0: off
    schedule: Schedule = field(default_factory=Schedule)  # default: constant, as published
    group_sparsity: float = 0.0  # group lasso strength on the first layer's input rows
    restart_stalled: RestartStalled = field(default_factory=RestartStalled)  # default: off
    head_init_scale: float = 1.0  # the heads' initial weights x this (1: published)

    @classmethod
    def from_config(
        cls, training: Mapping[str, Any], loss_config: Mapping[str, Any]
    ) -> TrainOptions:
        """From the config's ``training`` and ``loss`` sections (absent optional keys: the
        defaults above)."""
        plain = (f for f in fields(cls) if f.name not in ("loss", "schedule", "restart_stalled"))
        given = {
            f.name: training[f.name] if f.default is MISSING else training.get(f.name, f.default)
            for f in plain
        }
        return cls(
            **given,
            loss=loss.LossConfig.from_config(loss_config),
            schedule=Schedule.from_config(training.get("schedule")),
            restart_stalled=RestartStalled.from_config(training.get("restart_stalled")),
        )

    def fingerprint(self) -> str:
        return hashlib.sha256(
            json.dumps(asdict(self), sort_keys=True, default=str).encode()
        ).hexdigest()[:16]


def member_seed(seed: int, setup: str, member: int) -> int:
    return (setups.setup_seed(seed, setup) * 1009 + member) % 2**31


def member_key(seed: int, setup: str, member: int, attempt: int = 0) -> jax.Array:
    """Network key of a member (attempt > 0 after a non-finite loss)."""
    return jax.random.fold_in(jax.random.key(member_seed(seed, setup, member)), attempt)


def dev_patches(train_candidates: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The member's dev patches: a share of the non-test patches, at least one."""
    count = max(1, round(fraction * train_candidates.size))
    return np.sort(np.random.default_rng(seed).choice(train_candidates, size=count, replace=False))


@functools.lru_cache(maxsize=16)
def make_epoch(
    config: loss.LossConfig, optimiser: optax.GradientTransformation, group_sparsity: float = 0.0
):
    """One jitted epoch for several members at once (vmapped over the leading member axis).

    Each member scans Adam steps over the rows of its ``order`` (steps, patches_per_step);
    a member whose ``active`` flag is off keeps its state unchanged. With ``group_sparsity`` > 0
    each step adds that times :func:`loss.group_sparsity` of the first layer with the member's
    ``groups`` (groups, features; else None); the values returned stay the data loss.
    Cached: equal arguments give the same jitted function (traced once per shape).
    """

    def objective(net, batch, groups):
        data = loss.network_loss(net, batch, config)
        return data + group_sparsity * loss.group_sparsity(net.embedding[0].w, groups), data

    def one(net, opt_state, features, lat_feature, shared: batches.Patches, order, active, groups):
        patches = shared._replace(features=features, lat_feature=lat_feature)

        def step(carry, idx):
            net, opt_state = carry
            batch = batches.take(patches, idx)
            if group_sparsity:
                (_, value), grads = jax.value_and_grad(objective, has_aux=True)(net, batch, groups)
            else:
                value, grads = jax.value_and_grad(loss.network_loss)(net, batch, config)
            updates, new_opt = optimiser.update(grads, opt_state, net)
            new = (optax.apply_updates(net, updates), new_opt)
            return jax.tree_util.tree_map(lambda n, o: jnp.where(active, n, o), new, carry), value

        (net, opt_state), values = jax.lax.scan(step, (net, opt_state), order)
        return net, opt_state, values

    members = jax.vmap(one, in_axes=(0, 0, 0, 0, None, 0, 0, 0))
    return jax.jit(members)


@functools.lru_cache(maxsize=16)
def make_evaluate(config: loss.LossConfig):
    """Jitted total loss of each member over its own patches ``index`` (member, n), one patch at a
    time (cached like :func:`make_epoch`)."""

    def one(net, features, lat_feature, shared: batches.Patches, index):
        patches = shared._replace(features=features, lat_feature=lat_feature)
        return jnp.sum(
            jax.lax.map(
                lambda i: loss.network_loss(net, batches.take(patches, i[None]), config), index
            )
        )

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None, 0)))


def epoch_order(
    n_patches: int, per_step: int, seed: int, epoch: int, steps: int | None = None
) -> np.ndarray:
    """Shuffled patch indices for one epoch, (steps, per_step), wrapping around to fill them.

    ``steps`` defaults to the fewest that visit every patch once.
    """
    order = np.random.default_rng([seed, epoch]).permutation(n_patches)
    steps = math.ceil(n_patches / per_step) if steps is None else steps
    return np.resize(order, steps * per_step).reshape(steps, per_step)


class Member(NamedTuple):
    net: network.Network
    standardizer: network.Standardizer
    info: dict[str, Any]


def raw_features(driver: xr.Dataset, setup: str, seed: int) -> np.ndarray:
    """The setup's predictor columns with LAT_SIGMOID appended last, (cell, n + 1)."""
    raw = setups.feature_table(driver, setup, seed)
    return np.concatenate(
        [raw, np.asarray(network.lat_sigmoid(driver.lat.values))[:, None]], axis=-1
    )


class TrainingRun(NamedTuple):
    """One network to train: its setup, seed label and number, training and dev patch ids.

    The setup names the predictors it reads; the network key and the patch order come
    from ``member_seed(seed, label, member)`` (the study labels a member with its setup).
    """

    setup: str
    label: str
    member: int
    train: np.ndarray  # patch ids
    dev: np.ndarray  # patch ids, possibly none


class Trained(NamedTuple):
    """A trained run: network (without padding rows), standardisation and record."""

    net: network.Network
    standardizer: network.Standardizer
    attempts: int
    history: list[tuple[float, float]]  # (train, dev) loss per epoch; dev NaN without dev
    diverged: bool  # stopped on a non-finite loss (with diverged="stop")
    kept_epoch: int  # the epoch (1-based) whose weights ``net`` holds
    stop_reason: Literal["epochs", "patience", "diverged"]


def best_epoch(dev: list[float]) -> int:
    """Index of the first lowest finite dev loss; the first epoch when none is finite."""
    finite = [(value, i) for i, value in enumerate(dev) if math.isfinite(value)]
    return min(finite)[1] if finite else 0


def patience_ran_out(dev: list[float], patience: int) -> bool:
    """Whether the last ``patience`` epochs brought no dev loss below the best before them."""
    return patience > 0 and len(dev) - 1 - best_epoch(dev) >= patience


def epoch_summary(
    epoch: int,
    epochs: int,
    train_losses: np.ndarray,
    dev_losses: np.ndarray,
    active: np.ndarray,
    seconds: float | None,
) -> str:
    """One progress line for an epoch of several runs: the spread of their losses and, from
    ``seconds`` per epoch (None before one has been timed without compilation), the time left.
    """
    done = train_losses[active]
    finite = done[np.isfinite(done)]
    line = f"epoch {epoch}/{epochs}: {active.sum()} of {active.size} runs trained"
    if finite.size:
        line += (
            f", training loss median {np.median(finite):.4g}"
            f" ({finite.min():.4g}-{finite.max():.4g})"
        )
    dev = dev_losses[active]
    dev = dev[np.isfinite(dev)]
    if dev.size:
        line += f", dev median {np.median(dev):.4g}"
    if seconds is not None:
        line += f"; {seconds:.3g} s per epoch, about {(epochs - epoch) * seconds / 60:.1f} min left"
    return line


def run_orders(
    runs: list[TrainingRun],
    seeds: list[int],
    epochs: list[int],
    per_step: int,
    position: Mapping[int, int],
) -> np.ndarray:
    """Each run's shuffled training patches for its epoch, as positions in the shared pack.

    Returns (run, steps, per_step); every run takes as many steps as the one with the
    most training patches needs, the others wrapping around their own order (so a run
    takes the steps it takes alone only when no run has more training patches).
    """
    steps = max(math.ceil(r.train.size / per_step) for r in runs)
    orders = []
    for run, seed, epoch in zip(runs, seeds, epochs):
        positions = np.array([position[int(p)] for p in run.train])
        orders.append(positions[epoch_order(run.train.size, per_step, seed, epoch, steps)])
    return np.stack(orders)


def train_runs(
    driver: xr.Dataset,
    runs: list[TrainingRun],
    seed: int,
    options: TrainOptions,
    *,
    checkpoint: tuple[Path, str] | None = None,
    feature_pad: int | None = None,
    diverged: Literal["restart", "stop"] = "restart",
) -> list[Trained]:
    """Train several runs, of one setup or of several, in one vmapped JAX program (the loop).

    Each run standardises its setup's features over its training cells and scans Adam
    steps over its training patches, ``patches_per_step`` at a time, reshuffled every
    epoch. Features are zero-padded to one width (a multiple of ``feature_pad`` no
    narrower than the widest setup), which changes no trajectory. All runs take the
    same number of steps, the fewest that visit the largest training set; a run with
    fewer training patches wraps around its order and so takes more steps than alone:
    a run's trajectory is the one it has alone when all runs train on as many patches
    (the study's members on one driver do). After each epoch the runs' dev losses are
    computed (NaN for a run without dev patches).

    Args:
        checkpoint: (path, fingerprint) to resume from and write every
            ``checkpoint_every`` epochs, or None.
        feature_pad: features are zero-padded to a multiple of this (default FEATURE_PAD).
        diverged: on a non-finite loss, "restart" re-initialises the run with a new key
            (at most ``max_restarts`` times, then raises); "stop" freezes it and marks it.
    """
    candidates = driver.patch_id.values[~driver.patch_test.values]
    position = {int(p): i for i, p in enumerate(candidates)}
    shared = batches.pack(driver, candidates)
    loss.check_observations(shared.observations, options.loss)
    raw = {s: raw_features(driver, s, seed) for s in dict.fromkeys(r.setup for r in runs)}
    standardizers = [
        network.Standardizer.fit(raw[r.setup][np.isin(driver.patch.values, r.train)]) for r in runs
    ]
    z = [s.apply(raw[r.setup]) for s, r in zip(standardizers, runs)]
    n_features = [x.shape[1] - 1 for x in z]  # each run's own, without LAT_SIGMOID
    width = padded_width(max(n_features), feature_pad)
    features = jnp.stack(
        [_padded_features(batches.pack_features(driver, x[:, :-1], candidates), width) for x in z]
    )
    lat_feature = jnp.stack(
        [batches.pack_features(driver, x[:, -1:], candidates)[..., 0] for x in z]
    )
    has_dev = all(r.dev.size for r in runs)
    dev_index = jnp.asarray([[position[int(p)] for p in r.dev] for r in runs]) if has_dev else None
    seeds, labels = [member_seed(seed, r.label, r.member) for r in runs], [r.label for r in runs]

    logger.info(
        "training on JAX backend %s (%s)", jax.default_backend(), jax.devices()[0].device_kind
    )
    steps = max(math.ceil(r.train.size / options.patches_per_step) for r in runs)
    adam = optimisation.make_optimiser(options, steps)
    groups = jnp.stack([setups.group_matrix(r.setup, width) for r in runs])

    def initial_state() -> tuple[Any, Any]:
        return _stack(
            [
                _initial(n, width, options, adam, seed, r.label, r.member, 0)
                for n, r in zip(n_features, runs)
            ]
        )

    # Both programs compile before the initial networks exist, and the compiler's scratch
    # memory goes back to the system before they are made: the job's peak is the larger of
    # the two phases, not their sum.
    net_shape, opt_shape = jax.eval_shape(initial_state)
    first_order = jnp.asarray(
        run_orders(runs, seeds, [0] * len(runs), options.patches_per_step, position)
    )
    epoch_fn = compiled(
        make_epoch(options.loss, adam, options.group_sparsity),
        net_shape,
        opt_shape,
        features,
        lat_feature,
        shared,
        first_order,
        np.ones(len(runs), bool),
        groups,
    )
    evaluate = (
        compiled(make_evaluate(options.loss), net_shape, features, lat_feature, shared, dev_index)
        if has_dev
        else None
    )
    release_free_memory()
    fresh = _fresh_state(*initial_state(), len(runs))
    state = fresh if checkpoint is None else _resume(*checkpoint, fresh[:2], len(runs))
    patience = options.patience if has_dev else 0
    if options.patience and not has_dev:
        logger.warning("patience %d is not applied: runs without dev patches", options.patience)
    stopped = np.zeros(len(runs), bool)  # diverged, with diverged="stop"
    timed, seconds = None, None  # end of the last epoch; smoothed seconds per epoch

    def patient() -> np.ndarray:  # runs whose dev loss still improves
        return ~np.array([patience_ran_out([h[1] for h in hs], patience) for hs in state.history])

    while any(e < options.epochs for e, s in zip(state.epoch, stopped | ~patient()) if not s):
        active = np.array([e < options.epochs for e in state.epoch]) & ~stopped & patient()
        epochs = [min(e, options.epochs - 1) for e in state.epoch]
        order = jnp.asarray(run_orders(runs, seeds, epochs, options.patches_per_step, position))
        net, opt_state, values = epoch_fn(
            state.net, state.opt_state, features, lat_feature, shared, order, active, groups
        )
        train_losses = np.asarray(jnp.sum(values, axis=1), np.float64)
        evaluated = optimisation.evaluated_network(options.schedule, opt_state, net)
        dev_losses = (
            np.asarray(evaluate(evaluated, features, lat_feature, shared, dev_index), np.float64)
            if has_dev
            else np.full(len(runs), np.nan)
        )
        state = state._replace(net=net, opt_state=opt_state)
        if patience:
            state = state._replace(
                best=_keep_improved(state, evaluated, active, train_losses, dev_losses)
            )
        for i, r in enumerate(runs):
            if not active[i]:
                continue
            if not math.isfinite(train_losses[i]):
                if diverged == "stop":
                    stopped[i] = True
                    logger.warning(
                        "%s member %d: non-finite loss in epoch %d; the run stops",
                        r.label,
                        r.member,
                        state.epoch[i] + 1,
                    )
                    continue
                state = _reinitialise(state, i, r, options, adam, seed, n_features[i], width)
                continue
            state.history[i].append((float(train_losses[i]), float(dev_losses[i])))
            state.epoch[i] += 1
            logger.debug(
                "%s member %d epoch %d/%d  train %.6g  dev %.6g",
                r.label,
                r.member,
                state.epoch[i],
                options.epochs,
                train_losses[i],
                dev_losses[i],
            )
        for i in optimisation.stalled_runs(state.history, labels, options.restart_stalled):
            if active[i] and state.attempt[i] < options.max_restarts:
                far = f"training loss after epoch {state.epoch[i]} far above the best member's"
                state = _reinitialise(
                    state, i, runs[i], options, adam, seed, n_features[i], width, far
                )
        training = patient()
        done = min(e for e, going in zip(state.epoch, training) if going) if training.any() else 0
        now = time.perf_counter()
        if timed is not None:  # the first epoch also compiles: it does not count
            seconds = now - timed if seconds is None else 0.8 * seconds + 0.2 * (now - timed)
        timed = now
        logger.info(
            epoch_summary(
                max(state.epoch), options.epochs, train_losses, dev_losses, active, seconds
            )
        )
        if (
            checkpoint is not None
            and training.any()
            and done % options.checkpoint_every == 0
            and done < options.epochs
            and active[training].all()
            and not stopped.any()
        ):
            _save_checkpoint(checkpoint[0], checkpoint[1], state)
    last = optimisation.evaluated_network(options.schedule, state.opt_state, state.net)
    out = []
    for i, r in enumerate(runs):
        dev = [h[1] for h in state.history[i]]
        reason = "diverged" if stopped[i] else "epochs"
        if not stopped[i] and patience_ran_out(dev, patience):
            reason = "patience"
            logger.info(
                "%s member %d stopped after epoch %d: no better dev loss for %d epochs",
                r.label,
                r.member,
                len(dev),
                patience,
            )
        kept = best_epoch(dev) + 1 if patience and dev else len(dev)
        net = _member_slice(state.best if patience else last, i)
        out.append(
            Trained(
                _with_feature_rows(net, n_features[i]),
                standardizers[i],
                state.attempt[i] + 1,
                state.history[i],
                bool(stopped[i]),
                kept,
                reason,
            )
        )
    return out


class _State(NamedTuple):
    net: Any  # member-stacked network
    opt_state: Any
    epoch: list[int]
    attempt: list[int]
    history: list[list[tuple[float, float]]]
    best: Any  # member-stacked network of each run's best-dev epoch so far


def _fresh_state(net: Any, opt_state: Any, n: int) -> _State:
    return _State(net, opt_state, [0] * n, [0] * n, [[] for _ in range(n)], net)


def _keep_improved(
    state: _State,
    current: Any,
    active: np.ndarray,
    train_losses: np.ndarray,
    dev_losses: np.ndarray,
) -> Any:
    """The best networks, replaced by the ``current`` (evaluated) ones where an active run's
    epoch (finite training loss) is its first or brings a finite dev loss below every earlier
    one; the same choice as :func:`best_epoch` once the epoch enters the history."""
    improved = []
    for i, hs in enumerate(state.history):
        earlier = min((h[1] for h in hs if math.isfinite(h[1])), default=math.inf)
        better = math.isfinite(dev_losses[i]) and dev_losses[i] < earlier
        improved.append(bool(active[i]) and math.isfinite(train_losses[i]) and (not hs or better))
    mask = jnp.asarray(improved)
    pick = lambda new, old: jnp.where(mask.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
    return jax.tree_util.tree_map(pick, current, state.best)


def compiled(function: Any, *arguments: Any) -> Any:
    """``function`` (jitted) compiled ahead of time for arguments shaped like ``arguments``
    (arrays or ``jax.ShapeDtypeStruct``s); equal programs come from JAX's caches."""
    shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), arguments)
    return function.lower(*shapes).compile()


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere a
    no-op). XLA's compiler frees its scratch memory but the C allocator keeps it mapped, so
    without this a job's resident memory stays at its compile-time peak."""
    libc = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(libc), "malloc_trim", None) if libc else None
    if trim is not None:
        trim(0)


def _stack(trees: list[Any]) -> tuple[Any, Any]:
    nets, opts = zip(*trees)
    stack = lambda *xs: jnp.stack(xs)
    return jax.tree_util.tree_map(stack, *nets), jax.tree_util.tree_map(stack, *opts)


def _member_slice(tree: Any, i: int) -> Any:
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def _set_member(tree: Any, i: int, value: Any) -> Any:
    return jax.tree_util.tree_map(lambda x, v: x.at[i].set(v), tree, value)


def _reinitialise(
    state: _State,
    i: int,
    run: TrainingRun,
    options: TrainOptions,
    optimiser,
    seed: int,
    n_features: int,
    width: int,
    why: str | None = None,  # default: a non-finite loss
) -> _State:
    """Run ``i`` starts again from a new key derived from its seed, or the job fails."""
    attempt = state.attempt[i] + 1
    if attempt > options.max_restarts:
        raise RuntimeError(
            f"{run.label} member {run.member}: loss not finite in epoch {state.epoch[i] + 1} "
            f"after {options.max_restarts} re-initialisations"
        )
    logger.warning(
        "%s member %d: %s; re-initialising (attempt %d of %d)",
        run.label,
        run.member,
        why or f"non-finite loss in epoch {state.epoch[i] + 1}",
        attempt,
        options.max_restarts,
    )
    net, opt_state = _initial(
        n_features, width, options, optimiser, seed, run.label, run.member, attempt
    )
    state.epoch[i], state.attempt[i], state.history[i] = 0, attempt, []
    return state._replace(
        net=_set_member(state.net, i, net),
        opt_state=_set_member(state.opt_state, i, opt_state),
        best=_set_member(state.best, i, net),
    )


# Inside the training program, features are padded with zero columns to a multiple of this
# width, so that setups with different numbers of predictors train in one program and jobs
# of different setups share one compiled program (JAX's persistent cache). The
# zero columns and the matching zero rows of the first layer never change: their gradient
# is exactly zero, so Adam leaves them at zero. Members are stored without them.
FEATURE_PAD = 10


def padded_width(n_features: int, pad: int | None = None) -> int:
    """The feature width the training program uses: a multiple of ``pad`` (FEATURE_PAD)."""
    pad = FEATURE_PAD if pad is None else pad
    return -(-n_features // pad) * pad


def _with_feature_rows(net: network.Network, rows: int) -> network.Network:
    """``net`` with its first layer's input rows zero-padded or cut to ``rows``."""
    first = net.embedding[0]
    w = (
        first.w[:rows]
        if first.w.shape[0] >= rows
        else jnp.pad(first.w, ((0, rows - first.w.shape[0]), (0, 0)))
    )
    return net._replace(embedding=(first._replace(w=w), *net.embedding[1:]))


def _padded_features(features: jax.Array, width: int) -> jax.Array:
    return jnp.pad(features, [(0, 0)] * (features.ndim - 1) + [(0, width - features.shape[-1])])


def _initial(
    n_features: int,
    width: int,
    options: TrainOptions,
    optimiser,
    seed: int,
    label: str,
    member: int,
    attempt: int,
):
    net = network.init_network(
        member_key(seed, label, member, attempt),
        n_features,
        width=options.width,
        depth=options.depth,
        head_scale=options.head_init_scale,
    )
    net = _with_feature_rows(net, width)
    return net, optimiser.init(net)


def _resume(path: Path, fingerprint: Mapping[str, str], initial: tuple[Any, Any], n: int) -> _State:
    """State from the checkpoint when it matches this run, else the initial state."""
    fresh = _fresh_state(*initial, n)
    if not path.exists():
        return fresh
    try:
        arrays = checkpoints.load_npz(path)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        logger.warning("not resuming from %s: it is unreadable (%s); starting afresh", path, error)
        return fresh
    written = checkpoints.written_fingerprint(arrays)
    if not written:
        logger.warning("not resuming from %s: it has no fingerprint by part; starting afresh", path)
        return fresh
    differing = sorted(k for k in fingerprint if written.get(k) != fingerprint[k])
    if differing:
        logger.warning(
            "not resuming from %s: it was written for a different %s; starting afresh",
            path,
            " and ".join(differing),
        )
        return fresh
    logger.info("resuming from %s at epochs %s", path, arrays["epoch"].tolist())
    lengths = arrays["epoch"].tolist()
    history = [
        [tuple(map(float, row)) for row in arrays["history"][i, :k]] for i, k in enumerate(lengths)
    ]
    return _State(
        checkpoints.unflatten(initial[0], arrays, "net"),
        checkpoints.unflatten(initial[1], arrays, "opt"),
        lengths,
        arrays["attempt"].tolist(),
        history,
        checkpoints.unflatten(initial[0], arrays, "best"),
    )


def _save_checkpoint(path: Path, fingerprint: Mapping[str, str], state: _State) -> None:
    longest = max(len(h) for h in state.history)
    history = np.full((len(state.history), longest, 2), np.nan)
    for i, h in enumerate(state.history):
        history[i, : len(h)] = np.reshape(h, (-1, 2))
    arrays = (
        checkpoints.flatten(state.net, "net")
        | checkpoints.flatten(state.opt_state, "opt")
        | checkpoints.flatten(state.best, "best")
    )
    arrays |= {
        "fingerprint": np.array(json.dumps(fingerprint, sort_keys=True)),
        "epoch": np.array(state.epoch),
        "attempt": np.array(state.attempt),
        "history": history,
    }
    checkpoints.save_npz(path, arrays)


def save_member(member: Member, weights: Path, info: Path) -> None:
    """Weights and standardisation as .npz, everything else as JSON."""
    arrays = checkpoints.flatten(member.net, "net") | {
        "standardizer_mean": member.standardizer.mean,
        "standardizer_std": member.standardizer.std,
    }
    checkpoints.save_npz(weights, arrays)
    with atomic_path(info) as tmp:
        tmp.write_text(json.dumps(member.info, indent=1))
