"""Rule fluxnet_crossval: all folds and members of one setup in one JAX program, held out."""

from hybridland import jaxcache
from hybridland.logs import logging_to
from hybridland.studies import fluxnet
from hybridland.training import train

with logging_to(snakemake.log[0]):
    jaxcache.enable()
    fluxnet.crossval_files(
        driver_path=snakemake.input.driver,
        setup=snakemake.wildcards.setup,
        schemes=snakemake.params.schemes,
        members=snakemake.params.members,
        keep=snakemake.params.keep,
        seed=snakemake.params.seed,
        options=train.TrainOptions.from_config(snakemake.params.training, snakemake.params.loss),
        destination=snakemake.output.predictions,
        report=snakemake.output.runs,
    )
