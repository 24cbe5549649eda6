"""Rule identifiability: parameter spread across the kept members of each dedicated ensemble."""

from hybridland.analysis import identifiability
from hybridland.logs import logging_to

inputs, setups = snakemake.input, snakemake.params.setups
with logging_to(snakemake.log[0]):
    identifiability.identifiability_files(
        driver_path=inputs.driver,
        member_files_by_setup={
            setup: list(zip(inputs[f"weights/{setup}"], inputs[f"infos/{setup}"]))
            for setup in setups
        },
        grid=snakemake.wildcards.grid,
        threshold=snakemake.params.threshold,
        out_csv=snakemake.output.table,
        figure_stem=snakemake.output.figure.removesuffix(".png"),
        out_cv_nc=snakemake.output.get("cv"),
        selected={setup: inputs[f"selected/{setup}"] for setup in setups},
    )
