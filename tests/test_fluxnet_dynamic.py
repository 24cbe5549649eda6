"""FLUXNET16 dynamic hybrids: held-out sites stay out of training, the start is the static
hybrid, and the config names its bad keys."""

from __future__ import annotations

import copy
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from hybridland import config as study_config
from hybridland.model import loss, network, parameters
from hybridland.studies import fluxnet
from hybridland.studies.fluxnet import dynamic as fluxnet_dynamic
from hybridland.training import train

NAMES = ("canopy_efficiency", "wilting_point_frac")
OPTIONS = fluxnet_dynamic.DynamicOptions(
    ("dyn", "beta-nn", "gppet-nn"), "PFT+CLIM", NAMES, 4, 1, 0.01, 1, 1, 1
)
CONFIG = loss.LossConfig.from_mapping({"gpp_ec": 0.1, "et_ec": 0.7, "lai": 0.4, "nbe": 0.3})


@pytest.fixture(scope="module")
def sites():
    return fluxnet.assemble(fluxnet.read_monthly(), 0.5)


def _one_run(sites, kind, train_cells):
    shared = fluxnet_dynamic.shared_inputs(sites)
    raw = train.raw_features(sites, "PFT+CLIM", 0)
    run = fluxnet_dynamic.run_inputs(sites, shared, raw, train_cells)
    key = jax.random.key(0)
    net = network.init_network(key, raw.shape[1] - 1, width=4, depth=1)
    graph, theta = fluxnet_dynamic._initial(kind, key, run, OPTIONS, {"net": net})
    return shared, jax.tree_util.tree_map(jnp.asarray, run), graph, theta


@pytest.mark.parametrize("kind", ["dyn", "gppet-nn"])
def test_held_out_sites_never_enter_the_training_loss(sites, kind):
    train_cells = np.arange(sites.sizes["cell"]) != 3
    shared, run, graph, theta = _one_run(sites, kind, train_cells)

    def value(obs):
        changed = shared._replace(observations=obs)
        return float(fluxnet_dynamic.run_loss(kind, NAMES, graph, CONFIG, theta, run, changed))

    base = value(shared.observations)
    assert np.isfinite(base)
    for cell, same in ((3, True), (4, False)):
        moved = {
            k: o._replace(value=o.value.at[:, cell].add(5.0))
            for k, o in shared.observations.items()
        }
        assert (value(moved) == base) is same, cell


def test_the_lstm_hybrid_starts_as_the_static_hybrid(sites):
    _, run, graph, theta = _one_run(sites, "dyn", np.arange(sites.sizes["cell"]) < 12)
    index = jnp.arange(sites.sizes["cell"])
    params, dynamics = fluxnet_dynamic.hybrid("dyn", NAMES, graph, theta, run, index)
    steps = sites.sizes["time"]
    for name in NAMES:
        monthly = np.asarray(dynamics["dynamic"][name])
        assert monthly.shape == (steps, sites.sizes["cell"], 1)
        np.testing.assert_allclose(monthly, np.broadcast_to(params[name], monthly.shape), rtol=1e-6)
    lo, hi = parameters.named_bounds(NAMES)
    assert all(np.all((params[n] >= lo[i]) & (params[n] <= hi[i])) for i, n in enumerate(NAMES))


def test_dev_year_is_the_last_training_year_and_leaves_the_training_loss(sites):
    train_set, dev_set = fluxnet_dynamic.observation_sets(sites, 1)
    dev = fluxnet_dynamic.dev_months(sites, 1)
    first_test = np.argmax(sites.test_month.values, axis=1)
    assert (dev.sum(axis=0) == 12).all()
    assert all(dev[first_test[c] - 12 : first_test[c], c].all() for c in range(len(first_test)))
    for name, obs in train_set.observations.items():
        both = np.asarray(obs.mask[..., 0] + dev_set.observations[name].mask[..., 0])
        np.testing.assert_array_equal(
            both, np.asarray(fluxnet_dynamic.shared_inputs(sites).observations[name].mask[..., 0])
        )
        assert not np.asarray(obs.mask[..., 0])[dev].any()
    with pytest.raises(fluxnet.FluxnetError, match=re.escape("fluxnet.dynamic.dev_years (5)")):
        fluxnet_dynamic.dev_months(sites, 5)


def test_model_names_follow_the_static_setup():
    assert [OPTIONS.kind(n) for n in ("PFT+CLIM+dyn", "beta-nn", "gppet-nn")] == list(
        OPTIONS.models
    )
    with pytest.raises(fluxnet.FluxnetError, match="unknown model 'CLIM\\+dyn'"):
        OPTIONS.kind("CLIM+dyn")


def _fluxnet_config() -> dict:
    root = fluxnet.DATA.parents[3]
    base = yaml.safe_load((root / "config/config.yaml").read_text())
    overlay = yaml.safe_load((root / "config/studies/fluxnet16.yaml").read_text())
    return base | overlay | {"setups": base["setups"] | overlay["setups"]}


def test_the_shipped_study_builds_three_dynamic_hybrids():
    assert study_config.dynamic_models(_fluxnet_config()) == ["PFT+CLIM+dyn", "beta-nn", "gppet-nn"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"static_setup": "SOIL"}, "fluxnet.dynamic.static_setup 'SOIL' is not a setup"),
        ({"parameters": ["Cfol"]}, "fluxnet.dynamic.parameters lists ['Cfol']"),
        ({"keep_best": 3}, "fluxnet.dynamic.keep_best (3) exceeds fluxnet.dynamic.members (2)"),
    ],
)
def test_bad_dynamic_config_names_the_key(change, message):
    config = copy.deepcopy(_fluxnet_config())
    config["fluxnet"]["dynamic"] |= change
    with pytest.raises(study_config.ConfigError, match=re.escape(message)):
        study_config.check(config)
