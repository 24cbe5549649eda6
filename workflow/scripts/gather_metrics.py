"""Rule gather_metrics: one metrics table and one recovery table for the study."""

from hybridland.logs import logging_to
from hybridland.training import evaluate

with logging_to(snakemake.log[0]):
    evaluate.gather_metrics(
        paths=[*snakemake.input.metrics, *snakemake.input.baselines],
        destination=snakemake.output.metrics,
    )
    evaluate.gather_recovery(paths=snakemake.input.recovery, destination=snakemake.output.recovery)
