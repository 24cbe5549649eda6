"""Rules train_grid_<grid>, train_setup, train_member, train_extra_members: train the job's
members in one JAX program, one (weights, info) pair each."""

from hybridland import jaxcache
from hybridland.logs import logging_to
from hybridland.training import jobs, train

with logging_to(snakemake.log[0]):
    jaxcache.enable()
    jobs.train_files(
        driver_path=snakemake.input.driver,
        members=snakemake.params.runs,
        seed=snakemake.params.seed,
        options=train.TrainOptions.from_config(snakemake.params.training, snakemake.params.loss),
        weights=snakemake.output.weights,
        infos=snakemake.output.infos,
    )
