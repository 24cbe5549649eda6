"""Rule assemble_driver: one model driver per study and grid."""

import functools

from hybridland.data import driver, grids
from hybridland.data.twin import grid_truth
from hybridland.logs import logging_to

options = driver.DriverOptions.from_config(snakemake.params.driver)
with logging_to(snakemake.log[0]):
    driver.assemble_driver_file(
        regridded=snakemake.input.regridded,
        co2=snakemake.input.co2,
        sites=snakemake.input.sites,
        destination=snakemake.output.driver,
        grid=grids.Grid.from_config(snakemake.params.grid),
        options=options,
        period=snakemake.params.period,
        seed=snakemake.params.seed,
        transform=functools.partial(
            grid_truth.observed_on_grid, noise=snakemake.params.noise, seed=snakemake.params.seed
        )
        if options.observations == "grid_truth"
        else None,
    )
