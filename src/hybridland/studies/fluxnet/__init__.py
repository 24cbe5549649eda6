"""FLUXNET16: a cross-site study on 16 real eddy-covariance sites.

Cells are sites, each its own patch. Every site has a 9-year record (108
months) in different calendar years, so sites are stacked along ``cell`` on a
record-relative month axis (``time`` = month of the record) and carry their own
calendar: ``days``, ``doy``, ``delta_t`` and ``co2`` are (cell, time). The
driver follows the contract of :func:`hybridland.data.driver.assemble` as far as it
applies (predictors, forcing, fine targets, patch, test flags, predictor means
and standard deviations), so the training code of :mod:`hybridland.training.train` runs
on it unchanged: ``test_month`` keeps the test years out of every training loss
and ``<target>_weight`` carries inverse-variance weights from the supplied
uncertainties.

Spatial generalisation: the network is trained without the held-out sites of a
fold (one climate cluster, or one site) on the training years of the others,
predicts the held-out sites' parameters, and DALEC993 is run over their whole
record; skill is scored on their test years. All folds and members of a setup
train in one vmapped JAX program (a fold is a training-site mask). The upper
bound calibrates one raw parameter vector per site on its own training years
(same loss), all sites vmapped in one program.
"""

from hybridland.studies.fluxnet.calibrate import (
    CalibrationOptions,
    calibrate_files,
    calibrate_sites,
    make_calibration,
    raw_to_physical,
)
from hybridland.studies.fluxnet.crossval import (
    FoldRun,
    crossval_files,
    fold_runs,
    folds,
    kept_runs,
    predict_heldout,
    simulate_targets,
    target_series,
    train_folds,
    training_cells,
    training_runs,
)
from hybridland.studies.fluxnet.scores import (
    FLOAT_FORMAT,
    evaluate_files,
    figure,
    figure_files,
    heldout_table,
    medians,
    pooled_metrics,
    site_scores,
    test_observations,
)
from hybridland.studies.fluxnet.sites import (
    CALIBRATION,
    CALIBRATION_SETUP,
    DATA,
    FORCING,
    GRID,
    HELDOUT_COLUMNS,
    IGBP_CODES,
    MEDIAN_COLUMNS,
    MONTHLY,
    MONTHLY_TARGETS,
    SCHEMES,
    WEIGHT_RANGE,
    FluxnetError,
    assemble,
    assemble_driver_file,
    observed,
    pft_one_hot,
    read_monthly,
    record_months,
    site_calendars,
    uncertainty_weight,
    verify_checksums,
)

__all__ = [
    "CALIBRATION",
    "CALIBRATION_SETUP",
    "DATA",
    "FLOAT_FORMAT",
    "FORCING",
    "GRID",
    "HELDOUT_COLUMNS",
    "IGBP_CODES",
    "MEDIAN_COLUMNS",
    "MONTHLY",
    "MONTHLY_TARGETS",
    "SCHEMES",
    "WEIGHT_RANGE",
    "CalibrationOptions",
    "FluxnetError",
    "FoldRun",
    "assemble",
    "assemble_driver_file",
    "calibrate_files",
    "calibrate_sites",
    "crossval_files",
    "evaluate_files",
    "figure",
    "figure_files",
    "fold_runs",
    "folds",
    "heldout_table",
    "kept_runs",
    "make_calibration",
    "medians",
    "observed",
    "pft_one_hot",
    "pooled_metrics",
    "predict_heldout",
    "raw_to_physical",
    "read_monthly",
    "record_months",
    "simulate_targets",
    "site_calendars",
    "site_scores",
    "target_series",
    "test_observations",
    "train_folds",
    "training_cells",
    "training_runs",
    "uncertainty_weight",
    "verify_checksums",
]
