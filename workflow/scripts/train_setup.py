"""Rule train_setup: train every member of one setup on one grid in one JAX program."""

from hybridland import jaxcache
from hybridland.logs import logging_to
from hybridland.training import train

with logging_to(snakemake.log[0]):
    jaxcache.enable()
    train.train_setup_files(
        driver_path=snakemake.input.driver,
        setup=snakemake.wildcards.setup,
        members=snakemake.params.members,
        seed=snakemake.params.seed,
        options=train.TrainOptions.from_config(snakemake.params.training, snakemake.params.loss),
        weights=snakemake.output.weights,
        infos=snakemake.output.infos,
    )
