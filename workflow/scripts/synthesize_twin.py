"""Rule synthesize_twin: write the twin region's native inputs, observations and truth."""

from pathlib import Path

from hybridland.data import twin
from hybridland.logs import logging_to

with logging_to(snakemake.log[0]):
    twin.synthesize(
        twin.TwinConfig.from_mapping(snakemake.params.twin), Path(snakemake.output[0]).parent
    )
