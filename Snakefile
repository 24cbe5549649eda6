"""hybridland: the study workflow. `snakemake --cores 2` builds the embedded twin study."""

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# In the order data flows, so that each file of rules can name the rules of the files before it.
if FLUXNET:

    include: "workflow/rules/fluxnet.smk"
    include: "workflow/rules/dynamic.smk"

elif config["source"] == "differland_global":  # the published bundle, read into the drivers

    include: "workflow/rules/bundle.smk"

else:  # the twin: synthesized products, regridded, assembled

    include: "workflow/rules/synthesize.smk"
    include: "workflow/rules/regrid.smk"
    include: "workflow/rules/driver.smk"


include: "workflow/rules/train.smk"


if not FLUXNET:  # FLUXNET16 scores held-out sites in fluxnet.smk instead

    include: "workflow/rules/evaluate.smk"


include: "workflow/rules/baselines.smk"


include: "workflow/rules/analyses.smk"


if TRUTH:

    include: "workflow/rules/scorecard.smk"


include: "workflow/rules/comparison.smk"


rule all:
    default_target: True
    input:
        study_outputs(),
