"""Rule synthesize_twin: write the twin region's native inputs, observations and truth."""

from pathlib import Path

from hybridland.data import twin
from hybridland.logs import logging_to

with logging_to(snakemake.log[0]):
    twin.synthesize(
        config=twin.TwinConfig.from_mapping(snakemake.params.twin),
        out_dir=Path(snakemake.output.co2).parent,  # raw/, where every output lies
    )
