"""Rule fluxnet_figure: held-out NSE by variable, scheme and setup, against per-site calibration."""

from hybridland.logs import logging_to
from hybridland.studies import fluxnet

with logging_to(snakemake.log[0]):
    fluxnet.figure_files(
        heldout=snakemake.input.heldout,
        median_table=snakemake.input.medians,
        stem=snakemake.output.figure.removesuffix(".png"),
    )
