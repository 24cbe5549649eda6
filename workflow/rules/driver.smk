rule assemble_driver:
    input:
        regridded=expand(
            "results/{{study}}/regridded/{{grid}}/{dataset}.nc", dataset=config["datasets"]
        ),
        co2="results/{study}/raw/co2.csv",
        sites="results/{study}/raw/obs_ec_sites.nc",
        code=code("assemble_driver"),
    output:
        "results/{study}/driver/{grid}.nc",
    params:
        grid=lambda w: grid_config(w.grid),
        driver=config["driver"],
        period=config["period"],
        seed=config["seed"],
    log:
        "results/{study}/logs/assemble_driver/{grid}.log",
    benchmark:
        "results/{study}/benchmarks/assemble_driver/{grid}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/assemble_driver.py"
