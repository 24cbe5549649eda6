"""Rule fluxnet_dynamic: one dynamic hybrid, across sites (every fold) and per site."""

from hybridland import jaxcache
from hybridland.logs import logging_to
from hybridland.studies.fluxnet import calibrate, dynamic
from hybridland.training import train

with logging_to(snakemake.log[0]):
    jaxcache.enable()
    dynamic.dynamic_files(
        driver_path=snakemake.input.driver,
        name=snakemake.wildcards.model,
        options=dynamic.DynamicOptions.from_config(snakemake.params.dynamic),
        schemes=snakemake.params.schemes,
        seed=snakemake.params.seed,
        training=train.TrainOptions.from_config(snakemake.params.training, snakemake.params.loss),
        calibration=calibrate.CalibrationOptions.from_config(snakemake.params.calibration),
        predictions=snakemake.output.predictions,
        runs=snakemake.output.runs,
        per_site=snakemake.output.per_site,
    )
