"""Rule adapt_bundle: the driver of one grid from the downloaded DifferLand bundle."""

from hybridland.data import bundle, driver, grids
from hybridland.logs import logging_to

with logging_to(snakemake.log[0]):
    bundle.adapt_bundle_file(
        manifest=snakemake.input.manifest,
        destination=snakemake.output.driver,
        grid=grids.Grid.from_config(snakemake.params.grid),
        options=driver.DriverOptions.from_config(snakemake.params.driver),
        period=snakemake.params.period,
        seed=snakemake.params.seed,
        layout=bundle.Layout.from_config(snakemake.params.layout),
    )
