# Source differland_global: the published bundle, downloaded with the md5s of its Zenodo
# record, then read into one driver per grid (in place of synthesize/regrid/assemble).


rule download_bundle:
    input:
        code=code("download_bundle"),
        registry="src/hybridland/data/sources.yaml",
    output:
        # the files go to the folder of the same name, raw/differland_global/
        manifest=raw_file("differland_global.json"),
    log:
        log_file("download_bundle"),
    benchmark:
        benchmark_file("download_bundle")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=600,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/download_bundle.py"


rule adapt_bundle:
    input:
        manifest=rules.download_bundle.output.manifest,
        code=code("adapt_bundle"),
    output:
        driver=driver_file("{grid}"),
    params:
        grid=lambda w: grid_config(w.grid),
        driver=config["driver"],
        period=config["period"],
        seed=config["seed"],
        layout=config.get("bundle", {}),
    log:
        log_file("adapt_bundle/{grid}"),
    benchmark:
        benchmark_file("adapt_bundle/{grid}")
    threads: 1
    resources:
        mem_mb=24000,
        runtime=120,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/adapt_bundle.py"
