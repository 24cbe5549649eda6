"""Rule sensitivity: which parameters the twin's observations can see at all."""

from hybridland import jaxcache
from hybridland.analysis import sensitivity
from hybridland.logs import logging_to
from hybridland.model.loss import LossConfig

with logging_to(snakemake.log[0]):
    jaxcache.enable()
    sensitivity.sensitivity_file(
        driver_path=snakemake.input.driver,
        truth_nc=snakemake.input.truth,
        out_csv=snakemake.output.sensitivity,
        pairs_csv=snakemake.output.pairs,
        skill_csv=snakemake.output.truth_skill,
        loss=LossConfig.from_config(snakemake.params.loss),
        fisher_threshold=snakemake.params.fisher_threshold,
        seed=snakemake.params.seed,
    )
