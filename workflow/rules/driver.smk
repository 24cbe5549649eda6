rule assemble_driver:
    input:
        regridded=expand(
            rules.regrid.output.regridded, dataset=config["datasets"], allow_missing=True
        ),
        co2=rules.synthesize_twin.output.co2,
        sites=rules.synthesize_twin.output.sites,
        code=code("assemble_driver"),
    output:
        driver=driver_file("{grid}"),
    params:
        grid=lambda w: grid_config(w.grid),
        driver=config["driver"],
        period=config["period"],
        seed=config["seed"],
        noise=config.get("twin", {}).get("noise", {}),
    log:
        log_file("assemble_driver/{grid}"),
    benchmark:
        benchmark_file("assemble_driver/{grid}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/assemble_driver.py"
