"""Rule scorecard: the twin's analyses scored against its truth."""

from hybridland.analysis import scorecard
from hybridland.logs import logging_to

grids = snakemake.params.grids
shap_setups = snakemake.params.shap_setups
n = len(shap_setups)
inputs = {
    grid: {
        "shap": {
            s: (snakemake.input.ranks[i * n + j], snakemake.input.groups[i * n + j])
            for j, s in enumerate(shap_setups)
        },
        "identifiability": snakemake.input.identifiability[i],
        "sensitivity": snakemake.input.sensitivity[i],
        "congruence": snakemake.input.congruence[i],
        "partition": snakemake.input.partition[i],
    }
    for i, grid in enumerate(grids)
}
with logging_to(snakemake.log[0]):
    scorecard.scorecard_files(
        inputs,
        snakemake.params.groups,
        snakemake.output.table,
        snakemake.output.figure.removesuffix(".png"),
    )
