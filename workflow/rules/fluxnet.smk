FLUXNET_DATA = "src/hybridland/data/fluxnet16"


rule fluxnet_driver:
    input:
        data=f"{FLUXNET_DATA}/fluxnet16_monthly.nc",
        checksums=f"{FLUXNET_DATA}/SHA256SUMS",
        code=code("fluxnet_driver", "fluxnet", "driver"),
    output:
        "results/{study}/driver/sites.nc",
    params:
        min_valid_fraction=config["fluxnet"]["min_valid_fraction"],
        delta_t=config["driver"]["delta_t"],
    log:
        "results/{study}/logs/fluxnet_driver.log",
    benchmark:
        "results/{study}/benchmarks/fluxnet_driver.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/fluxnet_driver.py"


rule fluxnet_crossval:
    input:
        driver="results/{study}/driver/sites.nc",
        code=code("fluxnet_crossval", "fluxnet", "train", "loss", "network", "dalec", "parameters", "setups", "evaluate"),
    output:
        predictions="results/{study}/crossval/{setup}.nc",
        runs="results/{study}/crossval/{setup}.json",
    params:
        training=training_params(),
        loss=config["loss"],
        seed=config["seed"],
        members=[int(m) for m in MEMBERS],
        keep=config["training"]["keep_best"],
        schemes=config["fluxnet"]["schemes"],
    log:
        "results/{study}/logs/fluxnet_crossval/{setup}.log",
    benchmark:
        "results/{study}/benchmarks/fluxnet_crossval/{setup}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/fluxnet_crossval.py"


rule fluxnet_calibrate:
    input:
        driver="results/{study}/driver/sites.nc",
        code=code("fluxnet_calibrate", "fluxnet", "train", "loss", "dalec", "parameters", "evaluate"),
    output:
        "results/{study}/calibration/per_site.nc",
    params:
        loss=config["loss"],
        calibration=config["fluxnet"]["calibration"],
    log:
        "results/{study}/logs/fluxnet_calibrate.log",
    benchmark:
        "results/{study}/benchmarks/fluxnet_calibrate.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/fluxnet_calibrate.py"


rule fluxnet_evaluate:
    input:
        driver="results/{study}/driver/sites.nc",
        crossval=expand("results/{{study}}/crossval/{setup}.nc", setup=SETUPS["sites"]),
        calibration="results/{study}/calibration/per_site.nc",
        code=code("fluxnet_evaluate", "fluxnet", "evaluate"),
    output:
        heldout="results/{study}/evaluation/heldout_sites.csv",
        medians="results/{study}/evaluation/heldout_medians.csv",
        metrics="results/{study}/evaluation/metrics.csv",
    log:
        "results/{study}/logs/fluxnet_evaluate.log",
    benchmark:
        "results/{study}/benchmarks/fluxnet_evaluate.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/fluxnet_evaluate.py"


rule fluxnet_figure:
    input:
        heldout="results/{study}/evaluation/heldout_sites.csv",
        medians="results/{study}/evaluation/heldout_medians.csv",
        code=code("fluxnet_figure", "fluxnet", "plots"),
    output:
        expand("results/{{study}}/figures/heldout_nse.{ext}", ext=("png", "pdf")),
    log:
        "results/{study}/logs/fluxnet_figure.log",
    benchmark:
        "results/{study}/benchmarks/fluxnet_figure.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/fluxnet_figure.py"
