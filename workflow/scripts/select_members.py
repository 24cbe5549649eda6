"""Rule select_members: keep the best members of a setup by final training loss."""

from hybridland.logs import logging_to
from hybridland.training import train

with logging_to(snakemake.log[0]):
    train.select_members_file(
        infos=snakemake.input.infos,
        keep=snakemake.params.keep,
        destination=snakemake.output.selected,
    )
