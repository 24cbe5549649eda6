"""Rule fluxnet_calibrate: the per-site calibration upper bound."""

from hybridland import jaxcache
from hybridland.logs import logging_to
from hybridland.model import loss
from hybridland.studies import fluxnet

with logging_to(snakemake.log[0]):
    jaxcache.enable()
    fluxnet.calibrate_files(
        driver_path=snakemake.input.driver,
        config=loss.LossConfig.from_config(snakemake.params.loss),
        options=fluxnet.CalibrationOptions.from_config(snakemake.params.calibration),
        destination=snakemake.output.calibration,
    )
