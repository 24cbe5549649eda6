"""Rule regrid: remap one native product onto one analysis grid."""

from hybridland.data import grids, regrid
from hybridland.logs import logging_to

with logging_to(snakemake.log[0]):
    regrid.regrid_file(
        source=snakemake.input.native,
        destination=snakemake.output.regridded,
        grid=grids.Grid.from_config(snakemake.params.grid),
        method=snakemake.params.method,
        min_valid=snakemake.params.min_valid,
        variables=snakemake.params.variables,
    )
