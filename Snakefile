"""hybridland: the study workflow. `snakemake --cores 2` builds the embedded twin study."""

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


if config["source"] == "fluxnet16":

    include: "workflow/rules/fluxnet.smk"

elif config["source"] == "differland_global":  # the published bundle, read into the drivers

    include: "workflow/rules/bundle.smk"
    include: "workflow/rules/evaluate.smk"

else:  # the twin: synthesized products, regridded, assembled

    include: "workflow/rules/synthesize.smk"
    include: "workflow/rules/regrid.smk"
    include: "workflow/rules/driver.smk"
    include: "workflow/rules/evaluate.smk"


include: "workflow/rules/train.smk"
include: "workflow/rules/analyses.smk"


if TRUTH:

    include: "workflow/rules/scorecard.smk"


rule all:
    default_target: True
    input:
        study_outputs(),
