rule regrid:
    input:
        native=lambda w: rules.synthesize_twin.output[w.dataset],
        code=code("regrid"),
    output:
        regridded=regridded_file("{dataset}"),
    params:
        method=lambda w: config["datasets"][w.dataset]["method"],
        grid=lambda w: grid_config(w.grid),
        min_valid=config["regrid"]["min_valid"],
        variables=lambda w: config["datasets"][w.dataset].get("variables"),
    log:
        log_file("regrid/{grid}/{dataset}"),
    benchmark:
        benchmark_file("regrid/{grid}/{dataset}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../../envs/regrid.yaml"
    script:
        "../scripts/regrid.py"
