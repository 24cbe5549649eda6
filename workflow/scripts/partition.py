"""Rule partition: hierarchical partitioning of test skill over the predictor groups, on one grid."""

from hybridland import partition
from hybridland.logs import logging_to

with logging_to(snakemake.log[0]):
    partition.partition_files(
        metrics_csv=snakemake.input.metrics,
        skill_maps={path.split("/")[-2]: path for path in snakemake.input.maps},
        grid=snakemake.wildcards.grid,
        groups=snakemake.params.groups,
        out_csv=snakemake.output.table,
        out_maps_nc=snakemake.output.cells,
        bars_stem=snakemake.output.bars.removesuffix(".png"),
        maps_stem=snakemake.output.maps.removesuffix(".png"),
    )
