"""Rule identifiability: spread of parameters across the kept members of each dedicated ensemble."""

from hybridland.analysis import identifiability
from hybridland.logs import logging_to

setups = snakemake.params.setups
per_setup = len(snakemake.input.weights) // len(setups)
pairs = list(zip(snakemake.input.weights, snakemake.input.infos))
with logging_to(snakemake.log[0]):
    identifiability.identifiability_files(
        driver_path=snakemake.input.driver,
        member_files_by_setup={
            s: pairs[i * per_setup : (i + 1) * per_setup] for i, s in enumerate(setups)
        },
        grid=snakemake.wildcards.grid,
        threshold=snakemake.params.threshold,
        out_csv=snakemake.output.table,
        figure_stem=snakemake.output.figure.removesuffix(".png"),
        out_cv_nc=snakemake.output.cv[0] if snakemake.output.cv else None,
        selected=dict(zip(setups, snakemake.input.selected)),
    )
