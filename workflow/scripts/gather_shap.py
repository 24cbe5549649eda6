"""Rule gather_shap: SHAP importance of every explained setup of a grid, one table, one figure."""

from hybridland.analysis import explain
from hybridland.logs import logging_to

with logging_to(snakemake.log[0]):
    explain.gather_files(
        importance=snakemake.input.importance,
        groups=snakemake.input.groups,
        out_csv=snakemake.output.importance,
        figure_stem=snakemake.output.figure.removesuffix(".png"),
    )
