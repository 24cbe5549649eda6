"""Rule select_members: keep the best members of a setup by final training loss."""

from hybridland.logs import logging_to
from hybridland.training import members

with logging_to(snakemake.log[0]):
    members.select_members_file(
        infos=snakemake.input.infos,
        keep=snakemake.params.keep,
        destination=snakemake.output.selected,
    )
