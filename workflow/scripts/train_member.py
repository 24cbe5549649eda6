"""Rule train_member: train one ensemble member of one setup on one grid."""

from hybridland import jaxcache
from hybridland.logs import logging_to
from hybridland.training import train

with logging_to(snakemake.log[0]):
    jaxcache.enable()
    train.train_member_files(
        driver_path=snakemake.input.driver,
        setup=snakemake.wildcards.setup,
        member=int(snakemake.wildcards.member),
        seed=snakemake.params.seed,
        options=train.TrainOptions.from_config(snakemake.params.training, snakemake.params.loss),
        weights=snakemake.output.weights,
        info=snakemake.output.info,
    )
