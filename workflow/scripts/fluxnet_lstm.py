"""Rule fluxnet_lstm: the LSTM baseline on every fold, predictions of the held-out sites."""

from hybridland import jaxcache
from hybridland.logs import logging_to
from hybridland.studies.fluxnet import lstm
from hybridland.training import baselines

with logging_to(snakemake.log[0]):
    jaxcache.enable()
    lstm.lstm_files(
        driver_path=snakemake.input.driver,
        groups=snakemake.params.groups,
        schemes=snakemake.params.schemes,
        options=baselines.Options.from_config(
            snakemake.params.baselines, "LSTM", snakemake.params.dev_fraction
        ),
        seed=snakemake.params.seed,
        destination=snakemake.output.predictions,
        report=snakemake.output.runs,
    )
