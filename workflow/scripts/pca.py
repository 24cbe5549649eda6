"""Rule pca: principal components of one setup's ensemble-mean parameter maps."""

from pathlib import Path

from hybridland.analysis import pca
from hybridland.logs import logging_to

with logging_to(snakemake.log[0]):
    pca.pca_files(
        params_nc=snakemake.input.params,
        identifiability_csv=snakemake.input.identifiability,
        grid=snakemake.wildcards.grid,
        out_dir=Path(snakemake.output.ratio).parent,  # pca/{grid}/, where every output lies
        truth_nc=snakemake.input.get("truth"),
        setup=snakemake.params.setup,
        quantities=snakemake.params.quantities,
    )
