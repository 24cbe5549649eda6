"""Pure machine-learning baselines: shapes, masks, early stopping, recovery, rows, determinism."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_evaluate import fake_sim, tiny_driver

from hybridland.model import recurrent
from hybridland.studies.fluxnet import assemble as assemble_sites
from hybridland.studies.fluxnet import lstm, read_monthly
from hybridland.studies.fluxnet.crossval import folds
from hybridland.studies.fluxnet.scores import heldout_table
from hybridland.training import baselines, evaluate

OPTIONS = baselines.Options(
    epochs=3,
    hidden=8,
    filters=4,
    kernel=3,
    learning_rate=0.01,
    weight_decay=1e-4,
    patience=0,
    cells_per_step=4,
    window=6,
    crop=3,
    dev_fraction=0.2,
)


def test_models_keep_time_and_space_and_zero_the_sea():
    lstm = recurrent.CellLSTM(hidden=5, outputs=3)
    x = jnp.ones((7, 11, 4))
    assert lstm.apply(lstm.init(jax.random.key(0), x), x).shape == (7, 11, 3)
    conv = recurrent.GridConvLSTM(filters=4, outputs=3, kernel=3)
    land = jnp.array(np.random.default_rng(0).random((5, 6)) > 0.4)
    x = jax.random.normal(jax.random.key(1), (9, 5, 6, 2))
    params = conv.init(jax.random.key(2), x, land)
    out = conv.apply(params, x, land)
    assert out.shape == (9, 5, 6, 3)
    assert np.all(np.asarray(out)[:, ~np.asarray(land)] == 0)
    # what lies off land never reaches the land pixels
    changed = x.at[:, ~land].set(100.0)
    np.testing.assert_array_equal(conv.apply(params, changed, land), out)


@pytest.mark.parametrize("model", ["lstm", "conv"])
def test_a_masked_target_changes_neither_loss_nor_gradient(model):
    rng = np.random.default_rng(3)
    if model == "lstm":
        net, x = recurrent.CellLSTM(4, 2), jnp.asarray(rng.normal(size=(6, 10, 3)), jnp.float32)
        args = (x,)
    else:
        net = recurrent.GridConvLSTM(3, 2, 3)
        x = jnp.asarray(rng.normal(size=(10, 4, 5, 3)), jnp.float32)
        args = (x, jnp.ones((4, 5), bool))
    params = net.init(jax.random.key(0), *args)
    shape = net.apply(params, *args).shape
    observed = rng.normal(size=shape)
    mask = (rng.random(shape) > 0.3).astype(np.float32)

    def loss_and_grad(obs):
        return jax.value_and_grad(
            lambda p: recurrent.masked_mse(net.apply(p, *args), jnp.asarray(obs), mask)
        )(params)

    reference = loss_and_grad(observed)
    for fill in (0.0, 1e6, np.nan):
        other = np.where(mask > 0, observed, fill)
        value, grad = loss_and_grad(other)
        assert float(value) == float(reference[0])
        jax.tree_util.tree_map(np.testing.assert_array_equal, grad, reference[1])


def test_early_stopping_keeps_the_best_dev_epoch_and_stops_after_patience():
    dev = [5.0, 3.0, 4.0, 2.0, 2.5, 6.0, 7.0, 1.0]  # epoch 4 is best until patience runs out

    def step(params, opt_state, batch):
        return params + 1, opt_state, jnp.float32(0.0)  # params count epochs

    fitted = baselines.early_stopping(
        0,
        step,
        optax.identity(),
        lambda epoch: [None],
        lambda params: dev[params - 1],
        epochs=len(dev),
        patience=2,
    )
    assert fitted.kept_epoch == 4
    assert fitted.params == 4
    assert [d for _, d in fitted.history] == dev[:6]  # stopped two epochs after the best
    no_dev = baselines.early_stopping(
        0, step, optax.identity(), lambda epoch: [None], None, epochs=3, patience=2
    )
    assert (no_dev.kept_epoch, no_dev.params) == (3, 3)


def _lagged_data(seed: int) -> baselines.Data:
    """Targets that need memory: y_t = x_(t-1) + 0.5 x_t, for 64 cells of 24 steps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 24, 1)).astype(np.float32)
    y = 0.5 * x + np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
    weight = np.ones_like(y)
    return baselines.Data(x, y, weight, baselines.Scale(np.zeros(1), np.ones(1)), ("lai",))


def test_a_tiny_lstm_learns_a_lagged_mapping_on_cells_it_never_saw():
    data = _lagged_data(0)
    cells = np.arange(64)
    train_cells, dev_cells = cells < 40, (cells >= 40) & (cells < 48)
    options = OPTIONS.__class__(**{**OPTIONS.__dict__, "epochs": 60, "cells_per_step": 8})
    program, fitted = baselines.fit_lstm(data, train_cells, dev_cells, options, seed=1)
    prediction = baselines.predict_lstm(program, fitted.params, data.inputs)
    test = cells >= 48
    nse = 1 - np.sum((prediction[test] - data.values[test]) ** 2) / np.sum(
        (data.values[test] - data.values[test].mean()) ** 2
    )
    assert nse > 0.9


def test_same_seed_same_numbers_other_seed_other_numbers():
    data = _lagged_data(1)
    train_cells = np.arange(64) < 48
    runs = [
        baselines.fit_lstm(data, train_cells, ~train_cells, OPTIONS, seed=s)[1] for s in (7, 7, 8)
    ]
    flat = [
        np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(r.params)]) for r in runs
    ]
    np.testing.assert_array_equal(flat[0], flat[1])
    assert not np.array_equal(flat[0], flat[2])
    assert runs[0].history == runs[1].history


@pytest.mark.parametrize("name", ["LSTM", "ConvLSTM"])
def test_baseline_rows_are_the_hybrid_rows_of_the_targets_it_sees(name):
    driver = tiny_driver()
    outputs, record = baselines.run_baseline(driver, name, ["CLIM"], OPTIONS, seed=4)
    assert set(outputs) == {"lai", "SIF", "ET"}
    assert outputs["lai"].shape == (driver.sizes["time"], driver.sizes["cell"])
    # the test patch is never trained on, nor is it a dev patch
    test_patch = int(driver.patch.values[driver.test.values][0])
    assert test_patch not in record["train_patches"] + record["dev_patches"]
    table = baselines.baseline_metrics(driver, outputs, record, "0p25deg", name)
    assert list(table.columns) == list(evaluate.METRIC_COLUMNS)
    assert set(table.setup) == {name} and set(table.member) == {0, "ensemble"}
    assert set(table.variable) == set(baselines.TWIN_TARGETS)
    hybrid = evaluate.member_metrics(driver, fake_sim(driver, np.random.default_rng(0)), record)
    seen = hybrid[hybrid.variable.isin(baselines.TWIN_TARGETS)]
    ours = table[table.member == 0]
    assert ours[["variable", "split", "metric", "n"]].values.tolist() == (
        seen[["variable", "split", "metric", "n"]].values.tolist()
    )


def test_the_physics_encoded_baseline_needs_the_hybrid_and_the_others_refuse_it():
    driver = tiny_driver()
    with pytest.raises(ValueError, match="needed by ConvLSTM\\+DALEC only"):
        baselines.run_baseline(driver, "ConvLSTM+DALEC", ["CLIM"], OPTIONS, seed=0)
    with pytest.raises(ValueError, match="unknown baseline 'GRU'"):
        baselines.run_baseline(driver, "GRU", ["CLIM"], OPTIONS, seed=0)


def test_options_name_the_missing_epochs_entry():
    section = {k: getattr(OPTIONS, k) for k in OPTIONS.__dataclass_fields__}
    section |= {"epochs": {"LSTM": 2, "ConvLSTM": 1}, "learning_rate": {"LSTM": 0.1}}
    options = baselines.Options.from_config(section, "LSTM", 0.1)
    assert (options.epochs, options.learning_rate) == (2, 0.1)
    with pytest.raises(ValueError, match="baselines.learning_rate has no entry for ConvLSTM"):
        baselines.Options.from_config(section, "ConvLSTM", 0.1)


def test_fluxnet_lstm_predicts_each_site_only_from_the_other_sites():
    sites = assemble_sites(read_monthly(), 0.5)
    options = OPTIONS.__class__(**{**OPTIONS.__dict__, "epochs": 2})
    scheme = ["leave_cluster_out"]
    predictions, runs = lstm.heldout_predictions(sites, ["PFT", "CLIM"], scheme, options, 0)
    assert predictions.attrs["setup"] == "LSTM" and len(runs) == len(folds(sites, scheme[0]))
    assert predictions.gpp_ec.dims == ("scheme", "cell", "time")
    assert np.all(predictions.members.values == 1)
    assert np.isfinite(predictions.gpp_ec.values).all()
    # a held-out cluster's observations do not reach its own predictions
    held_out = next(iter(folds(sites, scheme[0]).values()))
    changed = sites.copy(deep=True)
    changed["gpp_ec"] = changed.gpp_ec.where(~held_out[:, None], changed.gpp_ec * 3 + 5)
    again, _ = lstm.heldout_predictions(changed, ["PFT", "CLIM"], scheme, options, 0)
    np.testing.assert_array_equal(
        again.gpp_ec.values[0, held_out], predictions.gpp_ec.values[0, held_out]
    )
    table = heldout_table(sites, [predictions])
    assert set(table.setup) == {"LSTM"} and table.nse.notna().any()
