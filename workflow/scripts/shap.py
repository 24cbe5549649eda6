"""Rule shap: Kernel SHAP of one setup's ensemble-mean spatialization network."""

import pandas as pd

from hybridland import jaxcache
from hybridland.analysis import explain
from hybridland.logs import logging_to

settings = snakemake.params.shap
with logging_to(snakemake.log[0]):
    jaxcache.enable()
    explain.explain_files(
        driver_path=snakemake.input.driver,
        members=list(zip(snakemake.input.weights, snakemake.input.infos)),
        selected_json=snakemake.input.selected,
        grid=snakemake.wildcards.grid,
        setup=snakemake.wildcards.setup,
        parameters=[
            *settings["parameters"],
            *explain.identifiable(
                pd.read_csv(snakemake.input.identifiability), snakemake.wildcards.setup
            ),
        ],
        n_background=settings["n_background"],
        n_explained=settings["n_explained"],
        nsamples=settings["nsamples"],
        seed=snakemake.params.seed,
        out_csv=snakemake.output.importance,
        out_figure_stem=snakemake.output.figure.removesuffix(".png"),
        truth=snakemake.params.truth,
    )
