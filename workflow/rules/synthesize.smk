rule synthesize_twin:
    input:
        code=code("synthesize_twin"),
    output:
        # the native file of each dataset, named after it (regrid takes them by name)
        **{name: raw_file(dataset["file"]) for name, dataset in config["datasets"].items()},
        co2=raw_file("co2.csv"),
        sites=raw_file("obs_ec_sites.nc"),
        truth_predictors=raw_file("truth_predictors.nc"),
    params:
        twin=twin_config(),
    log:
        log_file("synthesize_twin"),
    benchmark:
        benchmark_file("synthesize_twin")
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/synthesize_twin.py"
