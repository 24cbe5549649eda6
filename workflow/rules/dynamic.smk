# FLUXNET16 dynamic hybrids (fluxnet.dynamic): one job per model, across sites and per site.

DYNAMIC_MODELS = study_config.dynamic_models(config)


wildcard_constraints:
    model="|".join(re.escape(m) for m in DYNAMIC_MODELS) or "no-dynamic-model",


rule fluxnet_dynamic:
    input:
        driver=rules.fluxnet_driver.output.driver,
        code=code("fluxnet_dynamic"),
    output:
        predictions=study_file("crossval/{model}.nc"),
        runs=study_file("crossval/{model}.json"),
        per_site=study_file("calibration/{model}.nc"),
    params:
        dynamic=config["fluxnet"].get("dynamic"),
        training=training_params(),
        loss=config["loss"],
        calibration=config["fluxnet"]["calibration"],
        seed=config["seed"],
        schemes=config["fluxnet"]["schemes"],
    log:
        log_file("fluxnet_dynamic/{model}"),
    benchmark:
        benchmark_file("fluxnet_dynamic/{model}")
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/fluxnet_dynamic.py"


def dynamic_outputs(kind, study):
    """The dynamic hybrids' held-out predictions (kind crossval) or per-site calibrations."""
    return expand(study_file(f"{kind}/{{model}}.nc"), model=DYNAMIC_MODELS, study=study)
