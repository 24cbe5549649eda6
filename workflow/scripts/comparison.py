"""Rule comparison: hybrids, dynamic hybrids, pure ML and CONTROL side by side."""

from hybridland.analysis import comparison
from hybridland.logs import logging_to

with logging_to(snakemake.log[0]):
    comparison.comparison_files(
        metrics_csv=snakemake.input.metrics,
        full_setup=snakemake.params.full_setup,
        out_csv=snakemake.output.table,
        figure_stem=snakemake.output.figure.removesuffix(".png"),
        medians_csv=snakemake.input.get("medians"),
    )
