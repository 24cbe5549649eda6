"""Rule fluxnet_driver: the driver of the 16 FLUXNET sites from the packaged monthly file."""

from hybridland.logs import logging_to
from hybridland.studies import fluxnet

with logging_to(snakemake.log[0]):
    fluxnet.assemble_driver_file(
        source=snakemake.input.data,
        destination=snakemake.output.driver,
        min_valid_fraction=snakemake.params.min_valid_fraction,
        delta_t=snakemake.params.delta_t,
    )
