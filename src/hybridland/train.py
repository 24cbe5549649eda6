"""Train one ensemble member: the spatialization network + DALEC993, end to end.

A member has its own seed, its own dev split (a share of the non-test patches)
and a network initialised with a key derived from the study seed, its setup
and its number, so results do not depend on the order jobs run in. Each step
takes ``patches_per_step`` patches (padded to a common number of slots) so that
coarse targets are compared with patch aggregates; patch order is reshuffled
every epoch from the member's seed. An epoch runs as one jitted ``lax.scan``.

Checkpoints (safe ``.npz``, no pickle) are written every few epochs; a run that
is killed and started again resumes from its last checkpoint and ends with the
weights an uninterrupted run produces. A non-finite loss re-initialises the
member with a new key derived from its seed, a bounded number of times.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from hybridland import dalec, loss, network, setups
from hybridland.files import atomic_path

logger = logging.getLogger(__name__)

FINE = ("lai", "sif", "et", "biomass")
COARSE = ("nbe", "ewt")
SITES = ("gpp_ec", "reco_ec", "et_ec")


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

    @classmethod
    def from_config(cls, training: Mapping[str, Any], loss_config: Mapping[str, Any]) -> TrainOptions:
        """From the config's ``training`` and ``loss`` sections."""
        keys = ("epochs", "learning_rate", "patches_per_step", "dev_fraction", "checkpoint_every", "max_restarts", "width", "depth")
        options = {k: v for k, v in loss_config.items() if k != "weights"}
        return cls(**{k: training[k] for k in keys}, loss=loss.LossConfig.from_mapping(loss_config["weights"], **options))

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()[:16]


class Patches(NamedTuple):
    """Patches padded to a common number of slots; arrays (patch, slot, ...) or (time, patch, slot)."""

    features: jax.Array
    lat_feature: jax.Array
    met: dalec.Met
    climate: dalec.Climate
    observations: dict[str, loss.Observation]


def member_seed(seed: int, setup: str, member: int) -> int:
    return (setups.setup_seed(seed, setup) * 1009 + member) % 2**31


def member_key(seed: int, setup: str, member: int, attempt: int = 0) -> jax.Array:
    """Network key of a member (attempt > 0 after a non-finite loss)."""
    return jax.random.fold_in(jax.random.key(member_seed(seed, setup, member)), attempt)


def dev_patches(train_candidates: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The member's dev patches: a share of the non-test patches, at least one."""
    count = max(1, round(fraction * train_candidates.size))
    return np.sort(np.random.default_rng(seed).choice(train_candidates, size=count, replace=False))


def observations(driver: xr.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(value, mask) per target on driver cells, (time, cell); missing values are 0 with mask 0."""
    out = {}
    cell_patch = driver.patch.values
    patch_index = {int(p): i for i, p in enumerate(driver.patch_id.values)}
    rows = np.array([patch_index[int(p)] for p in cell_patch])
    for name in FINE + COARSE + ("som",) + SITES:
        if name not in driver:
            continue
        values = driver[name].values.astype(np.float64)
        if name in COARSE:
            values = values[rows]  # the patch value on each of its cells
        values = values.T if values.ndim == 2 else values[None, :]
        mask = np.isfinite(values).astype(np.float32)
        if name in SITES:
            mask = mask * driver.ec_weight.values[None, :]
        out[name] = (np.where(mask > 0, values, 0.0).astype(np.float32), mask)
    return out


def pack(driver: xr.Dataset, features: np.ndarray, lat_feature: np.ndarray, patch_ids: np.ndarray) -> Patches:
    """Cells of ``patch_ids`` as (patch, slot) arrays; padded slots copy the patch's first cell with mask 0."""
    members = [np.flatnonzero(driver.patch.values == p) for p in patch_ids]
    slots = max(len(m) for m in members)
    index = np.array([np.resize(m, slots) for m in members])  # pads by repeating cells
    valid = np.array([np.arange(slots) < len(m) for m in members])

    def cells(x: np.ndarray) -> jax.Array:  # (cell, ...) -> (patch, slot, ...)
        return jnp.asarray(x[index], jnp.float32)

    def time_cells(x: np.ndarray) -> jax.Array:  # (time, cell) -> (time, patch, slot)
        return jnp.asarray(x[:, index], jnp.float32)

    n_time = driver.sizes["time"]

    def forcing(name: str) -> jax.Array:
        v = driver[name].values
        return time_cells(v.T) if v.ndim == 2 else time_cells(np.repeat(v[:, None], driver.sizes["cell"], axis=1))

    met = dalec.Met(*(forcing(f) for f in dalec.Met._fields))
    climate = dalec.Climate(cells(driver.lat.values), cells(driver.t_mean.values), cells(driver.p_mean.values))
    obs = {
        name: loss.Observation(time_cells(value), time_cells(mask) * jnp.asarray(valid, jnp.float32))
        for name, (value, mask) in observations(driver).items()
    }
    features = cells(features) * jnp.asarray(valid, jnp.float32)[..., None]
    assert met.t_min.shape == (n_time,) + index.shape
    return Patches(features, cells(lat_feature) * valid, met, climate, obs)


def take(patches: Patches, idx: jax.Array) -> loss.Batch:
    """The patches ``idx`` as one batch (patch axis first for cells, second for time)."""
    by_cell = lambda x: x[idx]
    by_time = lambda x: x[:, idx]
    return loss.Batch(
        features=by_cell(patches.features),
        lat_feature=by_cell(patches.lat_feature),
        met=jax.tree_util.tree_map(by_time, patches.met),
        climate=jax.tree_util.tree_map(by_cell, patches.climate),
        observations=jax.tree_util.tree_map(by_time, patches.observations),
    )


def make_epoch(config: loss.LossConfig, optimiser: optax.GradientTransformation):
    """One jitted epoch: a scan of Adam steps over the rows of ``order`` (steps, patches_per_step)."""

    @jax.jit
    def epoch(net, opt_state, patches: Patches, order: jax.Array):
        def step(carry, idx):
            net, opt_state = carry
            value, grads = jax.value_and_grad(loss.network_loss)(net, take(patches, idx), config)
            updates, opt_state = optimiser.update(grads, opt_state, net)
            return (optax.apply_updates(net, updates), opt_state), value

        (net, opt_state), values = jax.lax.scan(step, (net, opt_state), order)
        return net, opt_state, values

    return epoch


def make_evaluate(config: loss.LossConfig):
    """Jitted total loss over all patches, one patch at a time."""

    @jax.jit
    def evaluate(net, patches: Patches) -> jax.Array:
        n = patches.features.shape[0]
        return jnp.sum(jax.lax.map(lambda i: loss.network_loss(net, take(patches, i[None]), config), jnp.arange(n)))

    return evaluate


def epoch_order(n_patches: int, per_step: int, seed: int, epoch: int) -> np.ndarray:
    """Shuffled patch indices for one epoch, (steps, per_step); the last step wraps around."""
    order = np.random.default_rng([seed, epoch]).permutation(n_patches)
    steps = math.ceil(n_patches / per_step)
    return np.resize(order, steps * per_step).reshape(steps, per_step)


# ---- checkpoints: flat .npz of tree leaves keyed by their paths, no pickle


def flatten(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {prefix + jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def unflatten(template: Any, arrays: Mapping[str, np.ndarray], prefix: str) -> Any:
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(arrays[prefix + jax.tree_util.keystr(p)]) for p, _ in paths])


def save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


class Member(NamedTuple):
    net: network.Network
    standardizer: network.Standardizer
    info: dict[str, Any]


def standardizer_for(driver: xr.Dataset, setup: str, seed: int, train_cells: np.ndarray) -> tuple[np.ndarray, network.Standardizer]:
    """Raw features (with LAT_SIGMOID last) and their standardisation over the training cells."""
    raw = setups.feature_table(driver, setup, seed)
    raw = np.concatenate([raw, np.asarray(network.lat_sigmoid(driver.lat.values))[:, None]], axis=-1)
    return raw, network.Standardizer.fit(raw[train_cells])


def train_member(
    driver: xr.Dataset,
    setup: str,
    member: int,
    seed: int,
    options: TrainOptions,
    checkpoint: Path,
) -> Member:
    """Train one member, resuming from ``checkpoint`` when it exists and matches."""
    mseed = member_seed(seed, setup, member)
    candidates = driver.patch_id.values[~driver.patch_test.values]
    dev = dev_patches(candidates, options.dev_fraction, mseed)
    train_ids = np.setdiff1d(candidates, dev)
    train_cells = np.isin(driver.patch.values, train_ids)
    raw, standardizer = standardizer_for(driver, setup, seed, train_cells)
    z = standardizer.apply(raw)
    train_data = pack(driver, z[:, :-1], z[:, -1], train_ids)
    dev_data = pack(driver, z[:, :-1], z[:, -1], dev)
    loss.check_observations(train_data.observations, options.loss)

    optimiser = optax.adam(options.learning_rate)
    epoch_fn, evaluate = make_epoch(options.loss, optimiser), make_evaluate(options.loss)
    fingerprint = f"{options.fingerprint()}-{setup}-{member}-{seed}-{driver.sizes['cell']}"
    initial = _initial(raw.shape[1] - 1, options, optimiser, seed, setup, member, 0)
    state = _resume(checkpoint, fingerprint, *initial)
    attempt, start, history = state["attempt"], state["epoch"], state["history"]
    net, opt_state = state["net"], state["opt_state"]
    while start < options.epochs:
        for epoch in range(start, options.epochs):
            order = jnp.asarray(epoch_order(len(train_ids), options.patches_per_step, mseed, epoch))
            net, opt_state, values = epoch_fn(net, opt_state, train_data, order)
            train_loss = float(jnp.sum(values))
            if not math.isfinite(train_loss):
                attempt += 1
                if attempt > options.max_restarts:
                    raise RuntimeError(
                        f"{setup} member {member}: loss not finite in epoch {epoch + 1} after {options.max_restarts} re-initialisations"
                    )
                logger.warning("%s member %d: non-finite loss in epoch %d; re-initialising (attempt %d of %d)",
                               setup, member, epoch + 1, attempt, options.max_restarts)  # fmt: skip
                net, opt_state = _initial(raw.shape[1] - 1, options, optimiser, seed, setup, member, attempt)
                start, history = 0, []
                break
            dev_loss = float(evaluate(net, dev_data))
            history.append((train_loss, dev_loss))
            logger.info("%s member %d epoch %d/%d  train %.6g  dev %.6g", setup, member, epoch + 1, options.epochs, train_loss, dev_loss)
            if (epoch + 1) % options.checkpoint_every == 0 and epoch + 1 < options.epochs:
                _save_checkpoint(checkpoint, fingerprint, net, opt_state, epoch + 1, attempt, history)
        else:
            start = options.epochs
    info = {
        "setup": setup, "member": member, "seed": seed, "member_seed": mseed, "attempts": attempt + 1,
        "columns": list(setups.columns(setup)), "train_patches": train_ids.tolist(), "dev_patches": dev.tolist(),
        "history": {"train": [h[0] for h in history], "dev": [h[1] for h in history]},
        "final_train_loss": history[-1][0], "final_dev_loss": history[-1][1], "options": asdict(options),
    }  # fmt: skip
    return Member(net, standardizer, info)


def _initial(n_features: int, options: TrainOptions, optimiser, seed: int, setup: str, member: int, attempt: int):
    net = network.init_network(member_key(seed, setup, member, attempt), n_features, width=options.width, depth=options.depth)
    return net, optimiser.init(net)


def _resume(path: Path, fingerprint: str, net: network.Network, opt_state: Any) -> dict[str, Any]:
    """State from the checkpoint when it matches this run, else the given initial state."""
    fresh = {"net": net, "opt_state": opt_state, "epoch": 0, "attempt": 0, "history": []}
    if not path.exists():
        return fresh
    arrays = load_npz(path)
    if str(arrays["fingerprint"]) != fingerprint:
        logger.warning("%s belongs to another configuration; starting afresh", path)
        return fresh
    logger.info("resuming from %s at epoch %d", path, int(arrays["epoch"]))
    return {
        "net": unflatten(net, arrays, "net"),
        "opt_state": unflatten(opt_state, arrays, "opt"),
        "epoch": int(arrays["epoch"]),
        "attempt": int(arrays["attempt"]),
        "history": [tuple(map(float, row)) for row in arrays["history"]],
    }


def _save_checkpoint(path: Path, fingerprint: str, net, opt_state, epoch: int, attempt: int, history) -> None:
    arrays = flatten(net, "net") | flatten(opt_state, "opt")
    arrays |= {"fingerprint": np.array(fingerprint), "epoch": np.array(epoch), "attempt": np.array(attempt),
               "history": np.array(history, dtype=np.float64).reshape(-1, 2)}  # fmt: skip
    save_npz(path, arrays)


def save_member(member: Member, weights: Path, info: Path) -> None:
    """Weights and standardisation as .npz, everything else as JSON."""
    arrays = flatten(member.net, "net") | {"standardizer_mean": member.standardizer.mean, "standardizer_std": member.standardizer.std}
    save_npz(weights, arrays)
    with atomic_path(info) as tmp:
        tmp.write_text(json.dumps(member.info, indent=1))


def load_member(weights: Path, info: Path) -> Member:
    """A trained member back from :func:`save_member`."""
    meta = json.loads(Path(info).read_text())
    arrays = load_npz(weights)
    options = meta["options"]
    template = network.init_network(jax.random.key(0), len(meta["columns"]), width=options["width"], depth=options["depth"])
    standardizer = network.Standardizer(arrays["standardizer_mean"], arrays["standardizer_std"])
    return Member(unflatten(template, arrays, "net"), standardizer, meta)


def member_parameters(driver: xr.Dataset, member: Member) -> dict[str, np.ndarray]:
    """The member's 40 physical parameters on every driver cell, (cell,)."""
    raw = setups.feature_table(driver, member.info["setup"], member.info["seed"])
    raw = np.concatenate([raw, np.asarray(network.lat_sigmoid(driver.lat.values))[:, None]], axis=-1)
    z = jnp.asarray(member.standardizer.apply(raw), jnp.float32)
    params = network.physical_parameters(member.net, z[:, :-1], z[:, -1])
    return {k: np.asarray(v) for k, v in params.items()}


def train_member_files(driver_path: Path, setup: str, member: int, seed: int, options: TrainOptions, weights: Path, info: Path) -> None:
    """Entry point of the train_member rule: train (resuming if possible) and write the member."""
    checkpoint = Path(weights).with_name("checkpoint.npz")
    with xr.open_dataset(driver_path) as driver:
        result = train_member(driver.load(), setup, member, seed, options, checkpoint)
    save_member(result, Path(weights), Path(info))
    checkpoint.unlink(missing_ok=True)


def select_members(infos: list[Mapping[str, Any]], keep: int) -> list[int]:
    """Numbers of the ``keep`` members with the lowest final training loss (ties by number)."""
    if keep > len(infos):
        raise ValueError(f"cannot keep {keep} of {len(infos)} members")
    ranked = sorted(infos, key=lambda i: (i["final_train_loss"], i["member"]))
    return sorted(int(i["member"]) for i in ranked[:keep])


def select_members_file(infos: list[Path], keep: int, destination: Path) -> None:
    """Entry point of the select_members rule: write the kept members and every loss as JSON."""
    members = [json.loads(Path(p).read_text()) for p in infos]
    kept = select_members(members, keep)
    losses = {str(m["member"]): m["final_train_loss"] for m in members}
    logger.info("kept members %s of %d by final training loss", kept, len(members))
    with atomic_path(destination) as tmp:
        tmp.write_text(json.dumps({"kept": kept, "final_train_loss": losses}, indent=1))
