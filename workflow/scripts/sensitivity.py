"""Rule sensitivity: which parameters the twin's observations can see at all."""

from hybridland import jaxcache
from hybridland.analysis import sensitivity
from hybridland.logs import logging_to

with logging_to(snakemake.log[0]):
    jaxcache.enable()
    sensitivity.sensitivity_file(
        driver_path=snakemake.input.driver,
        truth_nc=snakemake.input.truth,
        out_csv=snakemake.output.sensitivity,
        seed=snakemake.params.seed,
    )
