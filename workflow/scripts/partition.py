"""Rule partition: hierarchical partitioning of test skill over the predictor groups, one grid."""

from hybridland.analysis import partition
from hybridland.logs import logging_to

output = snakemake.output
maps_png = output.get("maps")  # cell maps: only where cells lie on a grid
with logging_to(snakemake.log[0]):
    partition.partition_files(
        metrics_csv=snakemake.input.metrics,
        skill_maps={
            setup: snakemake.input[f"skill_maps/{setup}"]
            for setup in snakemake.params.skill_map_setups
        },
        grid=snakemake.wildcards.grid,
        groups=snakemake.params.groups,
        out_csv=output.table,
        bars_stem=output.bars.removesuffix(".png"),
        out_maps_nc=output.get("cells"),
        maps_stem=maps_png.removesuffix(".png") if maps_png else None,
    )
