"""Rules baseline_*: train one twin baseline, predict every cell, score it as the setups."""

from hybridland import jaxcache
from hybridland.logs import logging_to
from hybridland.training import baselines

with logging_to(snakemake.log[0]):
    jaxcache.enable()
    model = snakemake.params.model
    baselines.baseline_files(
        driver_path=snakemake.input.driver,
        name=model,
        grid=snakemake.params.grid,
        groups=snakemake.params.groups,
        options=baselines.Options.from_config(
            snakemake.params.baselines, model, snakemake.params.dev_fraction
        ),
        seed=snakemake.params.seed,
        metrics_csv=snakemake.output.metrics,
        record_json=snakemake.output.run,
        hybrid_params_nc=snakemake.input.get("hybrid"),
    )
