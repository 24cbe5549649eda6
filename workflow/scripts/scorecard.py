"""Rule scorecard: the twin's analyses scored against its truth."""

from hybridland.analysis import scorecard
from hybridland.logs import logging_to

inputs = snakemake.input
with logging_to(snakemake.log[0]):
    scorecard.scorecard_files(
        grids={
            grid: {
                "shap": {
                    setup: (inputs[f"ranks/{grid}/{setup}"], inputs[f"groups/{grid}/{setup}"])
                    for setup in snakemake.params.shap_setups
                },
                "identifiability": inputs[f"identifiability/{grid}"],
                "sensitivity": inputs[f"sensitivity/{grid}"],
                "truth_pairs": inputs[f"truth_pairs/{grid}"],
                "pairs": inputs[f"pairs/{grid}"],
                "congruence": inputs[f"congruence/{grid}"],
                "partition": inputs[f"partition/{grid}"],
                "truth": inputs[f"truth/{grid}"],
                "selected": {
                    setup: inputs[f"selected/{grid}/{setup}"]
                    for setup in snakemake.params.setups[grid]
                },
            }
            for grid in snakemake.params.grids
        },
        groups=snakemake.params.groups,
        metrics_csv=inputs.metrics,
        recovery_csv=inputs.recovery,
        out_csv=snakemake.output.table,
        figure_stem=snakemake.output.figure.removesuffix(".png"),
    )
