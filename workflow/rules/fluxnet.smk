FLUXNET_DATA = "src/hybridland/data/fluxnet16"


rule fluxnet_driver:
    input:
        data=f"{FLUXNET_DATA}/fluxnet16_monthly.nc",
        checksums=f"{FLUXNET_DATA}/SHA256SUMS",
        code=code("fluxnet_driver"),
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
        code=code("fluxnet_crossval"),
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
        code=code("fluxnet_calibrate"),
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
        code=code("fluxnet_evaluate"),
    output:
        heldout=report("results/{study}/evaluation/heldout_sites.csv", caption="../report/heldout_sites.rst", category="Held-out sites", labels={"table": "per site"}),
        medians=report("results/{study}/evaluation/heldout_medians.csv", caption="../report/heldout_medians.rst", category="Held-out sites", labels={"table": "medians"}),
        metrics=report("results/{study}/evaluation/metrics.csv", caption="../report/metrics.rst", category="Skill", labels={"table": "metrics"}),
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
        code=code("fluxnet_figure"),
    output:
        report("results/{study}/figures/heldout_nse.png", caption="../report/heldout_figure.rst", category="Held-out sites", labels={"figure": "NSE"}),
        "results/{study}/figures/heldout_nse.pdf",
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
