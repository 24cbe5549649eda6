"""The per-cell LSTM baseline across FLUXNET16 sites, under the hybrid's folds.

Each fold of each scheme (:func:`hybridland.studies.fluxnet.crossval.folds`) trains an
LSTM (:func:`hybridland.training.baselines.fit_lstm`) on the training sites' training
months, the observations and weights the hybrid's loss reads, and predicts the held-out
sites' whole series; there is no dev split (as the hybrid's cross-validation), so every
epoch runs. Predictions are written in the layout of the hybrid's cross-validation
(:func:`hybridland.studies.fluxnet.crossval.predict_heldout`), setup ``LSTM``, so the
evaluation scores them as a setup.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from hybridland.io import atomic_path, write_netcdf
from hybridland.studies.fluxnet.crossval import folds, training_cells
from hybridland.studies.fluxnet.sites import MONTHLY_TARGETS, FluxnetError
from hybridland.training import baselines, setups, train

logger = logging.getLogger(__name__)

SETUP = "LSTM"


def heldout_predictions(
    drv: xr.Dataset,
    groups: Sequence[str],
    schemes: Sequence[str],
    options: baselines.Options,
    seed: int,
) -> tuple[xr.Dataset, list[dict[str, object]]]:
    """Predictions of each site where its fold holds it out, (scheme, cell, time), and a record
    per fold."""
    names = tuple(MONTHLY_TARGETS)
    predictors = setups.columns(baselines.full_setup(groups))
    shape = (len(schemes), drv.sizes["cell"], drv.sizes["time"])
    series = {t: np.full(shape, np.nan) for t in names}
    count = np.zeros(shape[:2], np.int32)
    records = []
    for s, scheme in enumerate(schemes):
        for fold, held_out in folds(drv, scheme).items():
            cells = training_cells(held_out)
            inputs = baselines.forcing_and_predictors(drv, predictors, cells)
            data = baselines.target_data(drv, names, inputs, cells)
            key = train.member_seed(seed, f"{SETUP}:{scheme}:{fold}", 0)
            program, fitted = baselines.fit_lstm(data, cells, None, options, key)
            physical = baselines.unstandardise(
                baselines.predict_lstm(program, fitted.params, inputs), data
            )
            for i, t in enumerate(names):
                series[t][s, held_out] = physical[held_out, :, i]
            count[s, held_out] += 1
            records.append(
                {"scheme": scheme, "fold": fold, "final_train_loss": fitted.history[-1][0]}
            )
            logger.info(
                "%s fold %s: final training loss %.4f",
                scheme,
                fold,
                records[-1]["final_train_loss"],
            )
    if np.any(count != 1):
        raise FluxnetError(f"{SETUP}: a site is held out by no fold, or by several, of a scheme")
    dataset = xr.Dataset(
        {
            **{
                t: (("scheme", "cell", "time"), v, {"units": drv[t].attrs.get("units", "")})
                for t, v in series.items()
            },
            "members": (("scheme", "cell"), count, {"long_name": "kept members averaged"}),
        },
        coords={
            "scheme": list(schemes),
            "cell": drv.cell.values,
            "site": ("cell", drv.site.values),
            "time": drv.time.values,
        },
        attrs={
            "setup": SETUP,
            "predictors": " ".join(predictors),
            "title": "held-out predictions of the pure LSTM, by the fold that holds the site out",
        },
    )
    return dataset, records


def lstm_files(
    driver_path: Path | str,
    groups: Sequence[str],
    schemes: Sequence[str],
    options: baselines.Options,
    seed: int,
    destination: Path | str,
    report: Path | str,
) -> None:
    """Entry point of the fluxnet_lstm rule: train the LSTM on every fold, predict held-out
    sites."""
    with xr.open_dataset(driver_path) as data:
        drv = data.load()
    predictions, records = heldout_predictions(drv, groups, schemes, options, seed)
    write_netcdf(predictions, destination)
    with atomic_path(report) as tmp:
        tmp.write_text(json.dumps({"setup": SETUP, "runs": records}, indent=1, allow_nan=True))
