"""Rule identifiability: member spread and Fisher sensitivity of each dedicated ensemble."""

from pathlib import Path

from hybridland.analysis import identifiability
from hybridland.logs import logging_to
from hybridland.model.loss import LossConfig

inputs, params, setups = snakemake.input, snakemake.params, snakemake.params.setups
with logging_to(snakemake.log[0]):
    identifiability.identifiability_files(
        driver_path=inputs.driver,
        member_files_by_setup={
            setup: list(zip(inputs[f"weights/{setup}"], inputs[f"infos/{setup}"]))
            for setup in setups
        },
        grid=snakemake.wildcards.grid,
        out_dir=Path(snakemake.output.table).parent,  # identifiability/{grid}/, every output
        loss=LossConfig.from_config(params.loss),
        threshold=params.threshold,
        fisher_threshold=params.fisher_threshold,
        n_cells=params.fisher_cells,
        seed=params.seed,
        cv_maps_nc=snakemake.output.get("cv") is not None,
        selected={setup: inputs[f"selected/{setup}"] for setup in setups},
    )
