rule regrid:
    input:
        native=native_path,
        code=code("regrid"),
    output:
        "results/{study}/regridded/{grid}/{dataset}.nc",
    params:
        method=lambda w: config["datasets"][w.dataset]["method"],
        grid=lambda w: grid_config(w.grid),
        min_valid=config["regrid"]["min_valid"],
        variables=lambda w: config["datasets"][w.dataset].get("variables"),
    log:
        "results/{study}/logs/regrid/{grid}/{dataset}.log",
    benchmark:
        "results/{study}/benchmarks/regrid/{grid}/{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../../envs/regrid.yaml"
    script:
        "../scripts/regrid.py"
