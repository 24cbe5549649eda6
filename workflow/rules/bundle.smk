# Source differland_global: the published bundle, downloaded with the md5s of its Zenodo
# record, then read into one driver per grid (in place of synthesize/regrid/assemble).


rule download_bundle:
    input:
        code=code("download_bundle"),
        registry="src/hybridland/data/sources.yaml",
    output:
        "results/{study}/raw/differland_global.json",
    log:
        "results/{study}/logs/download_bundle.log",
    benchmark:
        "results/{study}/benchmarks/download_bundle.tsv"
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
        manifest="results/{study}/raw/differland_global.json",
        code=code("adapt_bundle"),
    output:
        "results/{study}/driver/{grid}.nc",
    params:
        grid=lambda w: grid_config(w.grid),
        driver=config["driver"],
        period=config["period"],
        seed=config["seed"],
        layout=config.get("bundle", {}),
    log:
        "results/{study}/logs/adapt_bundle/{grid}.log",
    benchmark:
        "results/{study}/benchmarks/adapt_bundle/{grid}.tsv"
    threads: 1
    resources:
        mem_mb=24000,
        runtime=120,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/adapt_bundle.py"
