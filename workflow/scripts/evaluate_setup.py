"""Rule evaluate_setup: skill, parameter maps, test simulations and truth recovery of one setup."""

from hybridland import jaxcache
from hybridland.logs import logging_to
from hybridland.training import evaluate

with logging_to(snakemake.log[0]):
    jaxcache.enable()  # every setup of a grid runs the same DALEC program
    evaluate.evaluate_selected(
        driver_path=snakemake.input.driver,
        selected=snakemake.input.selected,
        weights=snakemake.input.weights,
        infos=snakemake.input.infos,
        grid=snakemake.wildcards.grid,
        setup=snakemake.wildcards.setup,
        truth=snakemake.input.get("truth"),
        outputs={
            "metrics": snakemake.output.metrics,
            "recovery": snakemake.output.recovery,
            "maps": snakemake.output.maps,
            "simulated": snakemake.output.simulated,
            "params": snakemake.output.params,
        },
    )
