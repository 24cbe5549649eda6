"""Rule fluxnet_evaluate: held-out-site scores, their medians and metrics.csv."""

from hybridland.logs import logging_to
from hybridland.studies import fluxnet

with logging_to(snakemake.log[0]):
    fluxnet.evaluate_files(
        driver_path=snakemake.input.driver,
        crossval=[*snakemake.input.crossval, *snakemake.input.dynamic_crossval],
        calibration=snakemake.input.calibration,
        more_calibrations=snakemake.input.dynamic_calibration,
        heldout=snakemake.output.heldout,
        median_table=snakemake.output.medians,
        metrics=snakemake.output.metrics,
    )
