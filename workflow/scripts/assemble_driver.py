"""Rule assemble_driver: one model driver per study and grid."""

from hybridland.data import driver, grids
from hybridland.logs import logging_to

with logging_to(snakemake.log[0]):
    driver.assemble_driver_file(
        regridded=snakemake.input.regridded,
        co2=snakemake.input.co2,
        sites=snakemake.input.sites,
        destination=snakemake.output.driver,
        grid=grids.Grid.from_config(snakemake.params.grid),
        options=driver.DriverOptions.from_config(snakemake.params.driver),
        period=snakemake.params.period,
        seed=snakemake.params.seed,
    )
