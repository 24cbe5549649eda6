TWIN_FILES = [d["file"] for d in config["datasets"].values()] + [
    "co2.csv",
    "obs_ec_sites.nc",
    "truth_predictors.nc",
]


rule synthesize_twin:
    input:
        code=code("synthesize_twin"),
    output:
        expand("results/{{study}}/raw/{file}", file=TWIN_FILES),
    params:
        twin=twin_config(),
    log:
        "results/{study}/logs/synthesize_twin.log",
    benchmark:
        "results/{study}/benchmarks/synthesize_twin.tsv"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/synthesize_twin.py"
