"""Rule fluxnet_figure: held-out NSE per variable, scheme and setup against per-site calibration."""

from pathlib import Path

from hybridland.logs import logging_to
from hybridland.studies import fluxnet

with logging_to(snakemake.log[0]):
    stem = Path(snakemake.output[0]).with_suffix("")
    fluxnet.figure_files(snakemake.input.heldout, snakemake.input.medians, stem)
