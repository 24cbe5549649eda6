"""Rule download_bundle: the DifferLand bundle's files, verified against its Zenodo record."""

from pathlib import Path

from hybridland.data import bundle
from hybridland.logs import logging_to

with logging_to(snakemake.log[0]):
    bundle.download_bundle(
        folder=Path(snakemake.output.manifest).with_suffix(""),  # raw/differland_global/
        manifest=snakemake.output.manifest,
    )
