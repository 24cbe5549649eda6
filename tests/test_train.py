"""Training: setups, determinism, resumption after a kill, re-initialisation after NaN,
selection."""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from drivers import tiny_driver

from hybridland.contract import PREDICTOR_GROUPS
from hybridland.model import loss, network
from hybridland.training import batches, checkpoints, jobs, members, optimisation, setups, train

WEIGHTS = {
    "lai": 1.0,
    "sif": 10.0,
    "et": 1.0,
    "nbe": 1.0,
    "som": 1e-7,
    "violation": 1.0,
    "edc": 0.1,
}
TRAINING = {
    "epochs": 6,
    "learning_rate": 3e-3,
    "patches_per_step": 2,
    "dev_fraction": 0.2,
    "checkpoint_every": 2,
    "max_restarts": 2,
    "width": 8,
    "depth": 2,
}


def options(**changes) -> train.TrainOptions:
    return train.TrainOptions.from_config(
        TRAINING | changes, {"reduction": "mean", "coarse_min_valid": 0.8, "weights": WEIGHTS}
    )


def compiling_to(make, program):
    """A stand-in for ``make`` (``train.make_epoch`` or ``make_evaluate``) whose jitted function
    compiles, as ``train.compiled`` does, to ``program(the real compiled function)``."""

    class Jitted:
        def __init__(self, jitted):
            self.jitted = jitted

        def lower(self, *args):
            lowered = self.jitted.lower(*args)
            return types.SimpleNamespace(compile=lambda: program(lowered.compile()))

    return lambda *args: Jitted(make(*args))


def test_factorial_setups_are_canonical():
    names = setups.factorial(["AGE", "SOIL", "CLIM", "PFT"])
    assert len(names) == 16 and names[0] == "CONTROL" and names[-1] == "PFT+CLIM+SOIL+AGE"
    assert setups.setup_name(["SOIL", "PFT"]) == "PFT+SOIL"
    assert setups.columns("CLIM+AGE") == ("MAT", "MAP", "elevation", "canopy_height", "forest_age")
    assert setups.columns("CONTROL") == ("null",) and setups.columns("LATLON") == (
        "lat_deg",
        "lon_deg",
    )
    with pytest.raises(
        ValueError, match=re.escape("setup 'CLIM+PFT' is not canonical; write it as 'PFT+CLIM'")
    ):
        setups.groups_of("CLIM+PFT")


def test_same_seed_same_weights_and_losses(tmp_path):
    driver = tiny_driver()
    a = jobs.train_members(driver, [("PFT+CLIM", 0)], 7, options(), tmp_path / "a.npz")[0]
    b = jobs.train_members(driver, [("PFT+CLIM", 0)], 7, options(), tmp_path / "b.npz")[0]
    c = jobs.train_members(driver, [("PFT+CLIM", 1)], 7, options(), tmp_path / "c.npz")[0]
    assert a.info["history"] == b.info["history"]
    for x, y in zip(
        checkpoints.flatten(a.net, "").values(), checkpoints.flatten(b.net, "").values()
    ):
        np.testing.assert_array_equal(x, y)
    assert a.info["history"] != c.info["history"]
    assert a.info["history"]["train"][-1] < a.info["history"]["train"][0]
    assert set(a.info["dev_patches"]).isdisjoint(a.info["train_patches"])
    assert 5 not in a.info["dev_patches"] + a.info["train_patches"]  # the test patch


def run_member(driver_path: Path, out: Path, epochs: int) -> subprocess.Popen:
    script = (
        "import sys, json; from hybridland import jaxcache;"
        "from hybridland.training import jobs, train;"
        "jaxcache.enable();"  # as a workflow job does: $HYBRIDLAND_JAX_CACHE, set by conftest
        "o = train.TrainOptions.from_config(json.loads(sys.argv[1]), json.loads(sys.argv[2]));"
        "jobs.train_files(sys.argv[3], [['PFT', 0]], 3, o, "
        "[sys.argv[4] + '/weights.npz'], [sys.argv[4] + '/member.json'])"
    )
    loss_config = {"reduction": "mean", "coarse_min_valid": 0.8, "weights": WEIGHTS}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            json.dumps(TRAINING | {"epochs": epochs}),
            json.dumps(loss_config),
            str(driver_path),
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, Path]:
    """A driver file and the member an uninterrupted run makes of it."""
    root = tmp_path_factory.mktemp("train")
    tiny_driver().to_netcdf(root / "driver.nc")
    (root / "whole").mkdir()
    assert run_member(root / "driver.nc", root / "whole", 40).wait() == 0
    return root / "driver.nc", root / "whole"


@pytest.mark.slow  # two child processes per signal
@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_identical_weights(tmp_path, uninterrupted, kill):
    driver_path, whole_dir = uninterrupted
    (tmp_path / "killed").mkdir()
    process = run_member(driver_path, tmp_path / "killed", 40)
    checkpoint = tmp_path / "killed" / "checkpoint.npz"
    deadline = time.time() + 300
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(kill)
    process.wait()
    assert checkpoint.exists() and not (tmp_path / "killed" / "weights.npz").exists()
    stopped_at = int(np.load(checkpoint)["epoch"].max())
    assert 0 < stopped_at < 40
    resumed = run_member(driver_path, tmp_path / "killed", 40)
    assert resumed.wait() == 0, resumed.stderr.read()
    whole, again = np.load(whole_dir / "weights.npz"), np.load(tmp_path / "killed" / "weights.npz")
    assert whole.files == again.files
    for name in whole.files:
        np.testing.assert_array_equal(whole[name], again[name])
    history = json.loads((tmp_path / "killed" / "member.json").read_text())["history"]
    assert history == json.loads((whole_dir / "member.json").read_text())["history"]
    assert not checkpoint.exists()


def test_non_finite_loss_reinitialises_then_fails_clearly(tmp_path, monkeypatch, caplog):
    driver = tiny_driver()
    real = train.make_epoch
    calls = {"n": 0}

    def flaky(epoch):
        def run(*args):
            calls["n"] += 1
            net, opt_state, values = epoch(*args)
            return net, opt_state, values * (np.nan if calls["n"] == 2 else 1.0)

        return run

    monkeypatch.setattr(train, "make_epoch", compiling_to(real, flaky))
    member = jobs.train_members(driver, [("PFT", 0)], 3, options(), tmp_path / "c.npz")[0]
    assert member.info["attempts"] == 2 and len(member.info["history"]["train"]) == 6
    assert "non-finite loss in epoch 2; re-initialising (attempt 1 of 2)" in caplog.text

    broken = driver.assign(p_mean=driver.p_mean * 0.0)  # Theta = P / 0: every loss is NaN
    monkeypatch.setattr(train, "make_epoch", real)
    with pytest.raises(
        RuntimeError,
        match=re.escape("PFT member 0: loss not finite in epoch 1 after 2 re-initialisations"),
    ):
        jobs.train_members(broken, [("PFT", 0)], 3, options(), tmp_path / "d.npz")


def test_a_diverged_run_stops_while_the_others_train_on(monkeypatch, caplog):
    driver = tiny_driver()
    real = train.make_epoch
    calls = {"n": 0}

    def flaky(epoch):
        def run(*args):
            calls["n"] += 1
            net, opt_state, values = epoch(*args)
            poison = np.ones(values.shape[0])
            poison[0] = np.nan if calls["n"] == 2 else 1.0  # run 0, epoch 2
            return net, opt_state, values * poison[:, None]

        return run

    monkeypatch.setattr(train, "make_epoch", compiling_to(real, flaky))
    runs = [jobs.member_run(driver, "PFT", m, 3, 0.2) for m in (0, 1)]
    stopped, going = train.train_runs(driver, runs, 3, options(), diverged="stop")
    assert stopped.diverged and len(stopped.history) == 1 and stopped.attempts == 1
    assert not going.diverged and len(going.history) == 6
    assert "PFT member 0: non-finite loss in epoch 2; the run stops" in caplog.text


def test_epoch_summary_gives_the_losses_spread_and_the_time_left():
    line = train.epoch_summary(
        12,
        150,
        np.array([25.0, 14.0, 80.0, np.nan]),
        np.array([18.0, 9.0, 40.0, np.nan]),
        np.array([True, True, True, False]),
        6.0,
    )
    assert line == (
        "epoch 12/150: 3 of 4 runs trained, training loss median 25 (14-80), dev median 18;"
        " 6 s per epoch, about 13.8 min left"
    )
    first = train.epoch_summary(
        1, 3, np.array([np.inf]), np.array([np.nan]), np.array([True]), None
    )
    assert first == "epoch 1/3: 1 of 1 runs trained"


def test_training_logs_one_progress_line_per_epoch(caplog):
    driver = tiny_driver()
    runs = [jobs.member_run(driver, "PFT", m, 3, 0.2) for m in (0, 1)]
    with caplog.at_level(logging.INFO, logger="hybridland.training.train"):
        train.train_runs(driver, runs, 3, options())
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    progress = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in progress] == [f"epoch {e}/6" for e in range(1, 7)]
    assert "2 of 2 runs trained, training loss median" in progress[0]
    assert "min left" not in progress[0] and "s per epoch, about" in progress[-1]
    assert not any(" member 0 epoch " in line for line in lines)  # per run: debug level


def test_select_keeps_lowest_final_training_loss():
    infos = [{"member": m, "final_train_loss": loss} for m, loss in enumerate([3.0, 1.0, 2.0, 1.0])]
    assert members.select_members(infos, 2) == [1, 3]
    with pytest.raises(ValueError, match="cannot keep 5 of 4 members"):
        members.select_members(infos, 5)


def test_members_of_several_setups_trained_together_match_members_trained_alone(tmp_path):
    driver = tiny_driver()
    grid = [("CLIM", 1), ("PFT+CLIM", 0), ("PFT+CLIM", 1), ("CONTROL", 0), ("LATLON", 2)]
    together = jobs.train_members(driver, grid, 7, options(), tmp_path / "g.npz")
    for i in (2, 3):  # PFT+CLIM (13 columns) and CONTROL (1) beside setups of 3, 2 and 13
        setup, member = grid[i]
        alone = jobs.train_members(driver, [grid[i]], 7, options(), tmp_path / f"{i}.npz")[0]
        assert (together[i].info["setup"], together[i].info["member"]) == (setup, member)
        assert together[i].info["columns"] == list(setups.columns(setup))
        assert together[i].info["dev_patches"] == alone.info["dev_patches"]
        assert together[i].net.embedding[0].w.shape == (len(setups.columns(setup)), 8)
        np.testing.assert_allclose(
            together[i].info["history"]["train"], alone.info["history"]["train"], rtol=1e-4
        )
        np.testing.assert_allclose(
            together[i].info["history"]["dev"], alone.info["history"]["dev"], rtol=1e-4
        )
        np.testing.assert_allclose(together[i].standardizer.mean, alone.standardizer.mean)
        for x, y in zip(member_weights(together[i].net), member_weights(alone.net)):
            np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-5)
    assert together[1].info["history"] != together[2].info["history"]


def test_padding_the_features_inside_the_training_program_changes_nothing(tmp_path, monkeypatch):
    driver = tiny_driver()
    padded = jobs.train_members(driver, [("PFT+CLIM", 0)], 7, options(), tmp_path / "p.npz")[0]
    # 13 -> 20 columns
    monkeypatch.setattr(train, "FEATURE_PAD", 1)
    plain = jobs.train_members(driver, [("PFT+CLIM", 0)], 7, options(), tmp_path / "u.npz")[0]
    assert padded.net.embedding[0].w.shape == plain.net.embedding[0].w.shape == (13, 8)
    np.testing.assert_allclose(
        padded.info["history"]["train"], plain.info["history"]["train"], rtol=1e-5
    )
    for x, y in zip(
        checkpoints.flatten(padded.net, "").values(), checkpoints.flatten(plain.net, "").values()
    ):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_padded_width_rounds_up_to_the_step():
    assert [train.padded_width(n) for n in (1, 10, 11, 20)] == [10, 10, 20, 20]


# ---- early stopping on the dev loss


def scripted_dev_losses(monkeypatch, table: list[list[float]], start: int = 0) -> None:
    """Dev losses by epoch instead of computed ones: ``table[run][epoch]``, from ``start``."""
    calls = {"n": start}

    def evaluate(*args):
        calls["n"] += 1
        return np.array([row[calls["n"] - 1] for row in table])

    monkeypatch.setattr(
        train, "make_evaluate", compiling_to(REAL_MAKE_EVALUATE, lambda _: evaluate)
    )


REAL_MAKE_EPOCH, REAL_MAKE_EVALUATE = train.make_epoch, train.make_evaluate


def recorded_epochs(monkeypatch, fail_at: int | None = None) -> list:
    """The stacked networks each epoch call returns; the call ``fail_at`` raises instead."""
    real, nets = REAL_MAKE_EPOCH, []

    def recording(epoch):
        def run(*args):
            if len(nets) + 1 == fail_at:
                raise RuntimeError("killed")
            out = epoch(*args)
            nets.append(out[0])
            return out

        return run

    monkeypatch.setattr(train, "make_epoch", compiling_to(real, recording))
    return nets


STALLS = [5.0, 4.0, 4.0, 6.0, 4.5, 3.0, 3.0, 3.0]  # best at epoch 2: stops after epoch 4
IMPROVES = [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0]


def member_weights(tree, i=None) -> list[np.ndarray]:
    return [x if i is None else x[i] for x in checkpoints.flatten(tree, "").values()]


def test_a_member_whose_dev_loss_stalls_stops_and_keeps_its_best_weights(tmp_path, monkeypatch):
    driver = tiny_driver()
    scripted_dev_losses(monkeypatch, [STALLS, IMPROVES])
    nets = recorded_epochs(monkeypatch)
    stalled, going = jobs.train_members(
        driver, [("PFT", 0), ("PFT", 1)], 3, options(epochs=8, patience=2), tmp_path / "c.npz"
    )
    assert len(nets) == 8  # the loop goes on for the improving member
    assert stalled.info["history"]["dev"] == STALLS[:4]
    assert (stalled.info["epochs_run"], stalled.info["stop_reason"]) == (4, "patience")
    assert (stalled.info["kept_epoch"], stalled.info["final_dev_loss"]) == (2, 4.0)
    assert stalled.info["final_train_loss"] == stalled.info["history"]["train"][1]
    assert (going.info["epochs_run"], going.info["stop_reason"], going.info["kept_epoch"]) == (
        8,
        "epochs",
        8,
    )
    for epoch in range(4, 8):  # frozen after its stop while member 1 trains on
        for after, stop in zip(member_weights(nets[epoch], 0), member_weights(nets[3], 0)):
            np.testing.assert_array_equal(after, stop)
    moved = [member_weights(nets[7], 1), member_weights(nets[3], 1)]
    assert any(not np.array_equal(a, b) for a, b in zip(*moved))
    for kept, best in zip(member_weights(stalled.net), member_weights(nets[1], 0)):
        np.testing.assert_array_equal(kept, best)  # the best-dev epoch, 2
    for kept, last in zip(member_weights(going.net), member_weights(nets[7], 1)):
        np.testing.assert_array_equal(kept, last)
    saved = tmp_path / "m"
    saved.mkdir()
    train.save_member(stalled, saved / "w.npz", saved / "member.json")
    record = json.loads((saved / "member.json").read_text())
    assert (record["epochs_run"], record["stop_reason"], record["kept_epoch"]) == (4, "patience", 2)


def test_patience_zero_keeps_the_last_epoch_as_before(tmp_path, monkeypatch):
    driver = tiny_driver()
    scripted_dev_losses(monkeypatch, [STALLS, IMPROVES])
    nets = recorded_epochs(monkeypatch)
    stalled, _ = jobs.train_members(
        driver, [("PFT", 0), ("PFT", 1)], 3, options(epochs=8), tmp_path / "c"
    )
    assert (
        train.TrainOptions.from_config(
            TRAINING, {"reduction": "mean", "coarse_min_valid": 0.8, "weights": WEIGHTS}
        ).patience
        == 0
    )
    assert (stalled.info["epochs_run"], stalled.info["stop_reason"]) == (8, "epochs")
    assert stalled.info["kept_epoch"] == 8 and len(nets) == 8
    assert stalled.info["final_dev_loss"] == STALLS[-1]
    for kept, last in zip(member_weights(stalled.net), member_weights(nets[7], 0)):
        np.testing.assert_array_equal(kept, last)


def test_a_resumed_run_with_patience_ends_as_an_uninterrupted_one(tmp_path, monkeypatch, caplog):
    driver = tiny_driver()
    opts = options(epochs=8, patience=2, checkpoint_every=1)
    caplog.set_level(logging.INFO, logger=train.__name__)
    scripted_dev_losses(monkeypatch, [STALLS, IMPROVES])
    recorded_epochs(monkeypatch)
    whole = jobs.train_members(driver, [("PFT", 0), ("PFT", 1)], 3, opts, tmp_path / "whole.npz")

    checkpoint = tmp_path / "killed.npz"
    scripted_dev_losses(monkeypatch, [STALLS, IMPROVES])
    recorded_epochs(monkeypatch, fail_at=7)
    with pytest.raises(RuntimeError, match="killed"):
        jobs.train_members(driver, [("PFT", 0), ("PFT", 1)], 3, opts, checkpoint)
    assert np.load(checkpoint)["epoch"].tolist() == [4, 6]  # member 0 stopped before the kill

    scripted_dev_losses(monkeypatch, [STALLS, IMPROVES], start=6)
    resumed_nets = recorded_epochs(monkeypatch)
    resumed = jobs.train_members(driver, [("PFT", 0), ("PFT", 1)], 3, opts, checkpoint)
    assert "resuming from" in caplog.text and len(resumed_nets) == 2
    assert f"training on JAX backend {jax.default_backend()}" in caplog.text
    for a, b in zip(whole, resumed):
        assert a.info == b.info
        for x, y in zip(member_weights(a.net), member_weights(b.net)):
            np.testing.assert_array_equal(x, y)


def test_group_matrix_marks_each_column_with_its_group_and_leaves_padding_empty():
    matrix = setups.group_matrix("PFT+SOIL", 20)
    n_pft, n_soil = len(PREDICTOR_GROUPS["PFT"]), len(PREDICTOR_GROUPS["SOIL"])
    rows = {g: matrix[setups.GROUP_ROWS.index(g)] for g in setups.GROUP_ROWS}
    assert rows["PFT"][:n_pft].all() and rows["PFT"].sum() == n_pft
    assert rows["SOIL"][n_pft : n_pft + n_soil].all() and rows["SOIL"].sum() == n_soil
    assert matrix.sum(axis=0).tolist() == [1.0] * (n_pft + n_soil) + [0.0] * (20 - n_pft - n_soil)
    assert setups.group_matrix("LATLON", 2)[setups.GROUP_ROWS.index("LATLON")].tolist() == [1, 1]
    message = f"setup PFT+SOIL has {n_pft + n_soil} columns, more than width 10"
    with pytest.raises(ValueError, match=re.escape(message)):
        setups.group_matrix("PFT+SOIL", 10)


def test_constant_schedule_without_penalty_is_the_published_adam_trajectory():
    """make_epoch with the default options takes exactly the steps of plain Adam."""
    driver = tiny_driver()
    opts = options()
    shared = batches.pack(driver, driver.patch_id.values)
    z = network.Standardizer.fit(train.raw_features(driver, "PFT", 0)).apply(
        train.raw_features(driver, "PFT", 0)
    )
    features = batches.pack_features(driver, z[:, :-1], driver.patch_id.values)
    lat = batches.pack_features(driver, z[:, -1:], driver.patch_id.values)[..., 0]
    net = network.init_network(jax.random.key(1), features.shape[-1], width=8, depth=2)
    order = jnp.array([[0, 1], [2, 0]])
    adam = optimisation.make_optimiser(opts, steps_per_epoch=2)
    stack = lambda tree: jax.tree_util.tree_map(lambda x: x[None], tree)
    out, _, values = train.make_epoch(opts.loss, adam, opts.group_sparsity)(
        stack(net),
        stack(adam.init(net)),
        features[None],
        lat[None],
        shared,
        order[None],
        jnp.asarray([True]),
        None,
    )
    published, state = net, optax.adam(TRAINING["learning_rate"]).init(net)
    patches = shared._replace(features=features, lat_feature=lat)
    value_and_grad = jax.jit(jax.value_and_grad(loss.network_loss), static_argnums=2)
    for k, idx in enumerate(order):
        value, grads = value_and_grad(published, batches.take(patches, idx), opts.loss)
        updates, state = optax.adam(TRAINING["learning_rate"]).update(grads, state, published)
        published = optax.apply_updates(published, updates)
        np.testing.assert_allclose(float(values[0, k]), float(value), rtol=1e-6)
    for x, y in zip(member_weights(out, 0), member_weights(published)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


def test_warmup_cosine_schedule_rises_then_decays_to_its_final_fraction():
    opts = options(
        epochs=4, schedule={"kind": "warmup_cosine", "warmup_epochs": 1, "final_fraction": 0.1}
    )
    adam = optimisation.make_optimiser(opts, steps_per_epoch=5)
    x, state, rates = jnp.zeros(()), None, []
    state = adam.init(x)
    for _ in range(20):  # a constant gradient: Adam's step is the learning rate itself
        updates, state = adam.update(jnp.ones(()), state, x)
        rates.append(-float(updates))
    lr = TRAINING["learning_rate"]
    assert rates[0] == 0.0 and rates[5] == pytest.approx(lr, rel=1e-5)
    assert rates[2] == pytest.approx(0.4 * lr, rel=1e-5)
    assert all(a >= b for a, b in itertools.pairwise(rates[5:]))
    cosine = 0.5 * (1 + math.cos(math.pi * 14 / 15))  # step 19 of the 15 decaying ones
    assert rates[-1] == pytest.approx(lr * (0.1 + 0.9 * cosine), rel=1e-5)
    with pytest.raises(
        ValueError,
        match="training.schedule.kind must be one of constant, warmup_cosine, schedule_free, "
        "got 'linear'",
    ):
        options(schedule={"kind": "linear"})


def test_schedule_free_evaluates_and_keeps_the_average_of_its_iterates(tmp_path, monkeypatch):
    driver = tiny_driver()
    iterates = recorded_epochs(monkeypatch)
    opts = options(epochs=3, schedule={"kind": "schedule_free", "warmup_epochs": 1})
    (member,) = jobs.train_members(driver, [("PFT", 0)], 3, opts, tmp_path / "c.npz")
    candidates = driver.patch_id.values[~driver.patch_test.values]
    shared = batches.pack(driver, candidates)
    z = member.standardizer.apply(train.raw_features(driver, "PFT", 3))
    features = batches.pack_features(driver, z[:, :-1], candidates)
    lat = batches.pack_features(driver, z[:, -1:], candidates)[..., 0][None]
    dev = jnp.asarray([[list(candidates).index(p) for p in member.info["dev_patches"]]])
    stack = lambda tree: jax.tree_util.tree_map(lambda x: x[None], tree)
    dev_loss = lambda nets, x: float(train.make_evaluate(opts.loss)(nets, x, lat, shared, dev)[0])
    kept = dev_loss(stack(member.net), features[None])
    width = iterates[-1].embedding[0].w.shape[1]
    last = dev_loss(iterates[-1], train._padded_features(features, width)[None])
    # the recorded dev loss is the kept (averaged) network's, not the last iterate's
    assert kept == pytest.approx(member.info["final_dev_loss"], rel=1e-5)
    assert abs(last - kept) > 1e-3 * kept


def test_group_sparsity_shrinks_the_input_rows_and_keeps_padding_at_zero(tmp_path):
    driver = tiny_driver()
    fast = {"learning_rate": 0.05}  # Adam moves each weight about this much a step
    plain = jobs.train_members(driver, [("PFT+CLIM", 0)], 7, options(**fast), tmp_path / "p.npz")[0]
    runs = [jobs.member_run(driver, "PFT+CLIM", 0, 7, 0.2)]
    sparse = train.train_runs(driver, runs, 7, options(**fast, group_sparsity=100.0))[0]
    w_plain, w_sparse = plain.net.embedding[0].w, sparse.net.embedding[0].w
    assert float(jnp.linalg.norm(w_sparse)) < 0.5 * float(jnp.linalg.norm(w_plain))
    assert all(np.isfinite(h[0]) for h in sparse.history)


def test_padding_rows_stay_exactly_zero_under_group_sparsity(monkeypatch):
    driver = tiny_driver()
    nets = recorded_epochs(monkeypatch)
    runs = [jobs.member_run(driver, "PFT", 0, 7, 0.2)]
    train.train_runs(driver, runs, 7, options(group_sparsity=1.0), feature_pad=20)
    n = len(setups.columns("PFT"))
    assert all(np.all(np.asarray(net.embedding[0].w[0, n:]) == 0.0) for net in nets)


def test_stalled_runs_by_hand():
    rule = optimisation.RestartStalled(after_epochs=2, factor=2.0)
    history = lambda *train: [(t, math.nan) for t in train]
    histories = [history(9.0, 4.0), history(9.0, 9.0), history(8.0, 8.1), history(9.0), []]
    labels = ["A", "A", "A", "A", "B"]
    assert optimisation.stalled_runs(histories, labels, rule) == [1, 2]
    later = [h + history(1.0) for h in histories]  # past epoch 2: no longer judged
    assert optimisation.stalled_runs(later, labels, rule) == []
    alone = [history(9.0, 9.0)]  # a run without companions is its own best
    assert optimisation.stalled_runs(alone, ["A"], rule) == []
    assert optimisation.stalled_runs(histories, labels, optimisation.RestartStalled()) == []


def test_a_stalled_member_restarts_from_a_new_key(monkeypatch, caplog):
    driver = tiny_driver()
    real = train.make_epoch
    calls = {"n": 0}

    def stalling(epoch):
        def run(*args):
            calls["n"] += 1
            net, opt_state, values = epoch(*args)
            scale = np.ones(values.shape[0])
            scale[1] = 100.0 if calls["n"] <= 2 else 1.0  # run 1 looks stalled in its first try
            return net, opt_state, values * scale[:, None]

        return run

    monkeypatch.setattr(train, "make_epoch", compiling_to(real, stalling))
    rule = {"after_epochs": 2, "factor": 20.0}
    runs = [jobs.member_run(driver, "PFT", m, 3, 0.2) for m in (0, 1)]
    kept, restarted = train.train_runs(driver, runs, 3, options(restart_stalled=rule))
    assert kept.attempts == 1 and restarted.attempts == 2
    assert len(kept.history) == len(restarted.history) == TRAINING["epochs"]
    assert "PFT member 1: training loss after epoch 2 far above the best member's; " in caplog.text
    assert "re-initialising (attempt 1 of 2)" in caplog.text
    assert "attempt 2 of 2" not in caplog.text  # the new start is within 20 x: kept


def test_a_resumed_schedule_free_run_ends_as_an_uninterrupted_one(tmp_path, monkeypatch):
    driver = tiny_driver()
    opts = options(
        epochs=4, checkpoint_every=1, schedule={"kind": "schedule_free", "warmup_epochs": 1}
    )
    recorded_epochs(monkeypatch)
    (whole,) = jobs.train_members(driver, [("PFT", 0)], 3, opts, tmp_path / "whole.npz")
    recorded_epochs(monkeypatch, fail_at=3)
    with pytest.raises(RuntimeError, match="killed"):
        jobs.train_members(driver, [("PFT", 0)], 3, opts, tmp_path / "killed.npz")
    assert np.load(tmp_path / "killed.npz")["epoch"].tolist() == [2]
    recorded_epochs(monkeypatch)
    (resumed,) = jobs.train_members(driver, [("PFT", 0)], 3, opts, tmp_path / "killed.npz")
    assert whole.info == resumed.info
    for x, y in zip(member_weights(whole.net), member_weights(resumed.net)):
        np.testing.assert_array_equal(x, y)
