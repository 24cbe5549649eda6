"""The benchmark measures what training runs, and says where it ran (timings are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hybridland.model import loss
from hybridland.training import batches, bench, train

CELLS, MONTHS, REPEATS = 640, 24, 7  # two patches of 320 slots


@pytest.fixture(scope="module")
def figures() -> dict:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridland.cli",
            "bench",
            *("--cells", str(CELLS), "--months", str(MONTHS), "--repeats", str(REPEATS)),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.slow  # a child process compiles and times three programs
def test_bench_json_names_the_backend_and_the_run(figures):
    assert (figures["cells"], figures["months"], figures["repeats"]) == (CELLS, MONTHS, REPEATS)
    assert figures["backend"] == "cpu" == jax.default_backend()
    assert figures["device_kind"] == jax.devices()[0].device_kind
    assert figures["devices"] == [str(d) for d in jax.devices()]
    for name in ("forward", "value_and_grad", "adam_step"):
        assert figures[name]["median_s"] > 0


@pytest.mark.slow
def test_bench_losses_are_the_training_loops_on_the_same_batch(figures):
    """The bench's loss, gradient and Adam steps equal the training program's on its batch."""
    net, batch = bench.synthetic_batch(0, CELLS, MONTHS)
    config = bench.published_config()
    shared = batches.Patches(None, None, batch.met, batch.climate, batch.observations)
    both_patches = jnp.asarray([0, 1])
    value, grads = jax.jit(jax.value_and_grad(loss.network_loss), static_argnums=2)(
        net,
        batches.take(
            shared._replace(features=batch.features, lat_feature=batch.lat_feature), both_patches
        ),
        config,
    )
    np.testing.assert_allclose(figures["initial_loss"], float(value), rtol=1e-5)
    np.testing.assert_allclose(
        figures["initial_grad_norm"], float(optax.global_norm(grads)), rtol=1e-4
    )

    optimiser = optax.adam(5e-4)  # run_benchmark's default learning rate
    steps = figures["adam_steps_before_loss"] + 1  # the reported loss is that step's value
    assert steps == REPEATS + 2
    stack = lambda tree: jax.tree_util.tree_map(lambda x: x[None], tree)
    _, _, values = train.make_epoch(config, optimiser)(
        stack(net),
        stack(optimiser.init(net)),
        batch.features[None],
        batch.lat_feature[None],
        shared,
        jnp.tile(both_patches, (1, steps, 1)),
        jnp.asarray([True]),
        None,  # no group-sparsity penalty
    )
    np.testing.assert_allclose(float(values[0, 0]), figures["initial_loss"], rtol=1e-5)
    np.testing.assert_allclose(float(values[0, -1]), figures["loss"], rtol=1e-4)
    assert figures["loss"] < figures["initial_loss"]


def test_bench_refuses_fewer_than_seven_repeats():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridland.cli",
            "bench",
            *("--cells", "4", "--months", "12", "--repeats", "3"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "repeats must be at least 7, got 3" in result.stderr
