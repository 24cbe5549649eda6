"""Rule partition: hierarchical partitioning of test skill over the predictor groups, on one grid."""

from hybridland.analysis import partition
from hybridland.logs import logging_to

cell_maps = snakemake.output.cell_maps  # [cells.nc, maps.png, maps.pdf], or none for site studies
with logging_to(snakemake.log[0]):
    partition.partition_files(
        metrics_csv=snakemake.input.metrics,
        skill_maps={path.split("/")[-2]: path for path in snakemake.input.maps},
        grid=snakemake.wildcards.grid,
        groups=snakemake.params.groups,
        out_csv=snakemake.output.table,
        bars_stem=snakemake.output.bars.removesuffix(".png"),
        out_maps_nc=cell_maps[0] if cell_maps else None,
        maps_stem=cell_maps[1].removesuffix(".png") if cell_maps else None,
    )
