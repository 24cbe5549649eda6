rule fluxnet_driver:
    input:
        data="src/hybridland/data/fluxnet16/fluxnet16_monthly.nc",
        checksums="src/hybridland/data/fluxnet16/SHA256SUMS",
        code=code("fluxnet_driver"),
    output:
        driver=driver_file("sites"),
    params:
        min_valid_fraction=config["fluxnet"]["min_valid_fraction"],
        delta_t=config["driver"]["delta_t"],
    log:
        log_file("fluxnet_driver"),
    benchmark:
        benchmark_file("fluxnet_driver")
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
        driver=rules.fluxnet_driver.output.driver,
        code=code("fluxnet_crossval"),
    output:
        predictions=study_file("crossval/{setup}.nc"),
        runs=study_file("crossval/{setup}.json"),
    params:
        training=training_params(),
        loss=config["loss"],
        seed=config["seed"],
        members=[int(m) for m in MEMBERS],
        keep=config["training"]["keep_best"],
        schemes=config["fluxnet"]["schemes"],
    log:
        log_file("fluxnet_crossval/{setup}"),
    benchmark:
        benchmark_file("fluxnet_crossval/{setup}")
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
        driver=rules.fluxnet_driver.output.driver,
        code=code("fluxnet_calibrate"),
    output:
        calibration=study_file("calibration/per_site.nc"),
    params:
        loss=config["loss"],
        calibration=config["fluxnet"]["calibration"],
    log:
        log_file("fluxnet_calibrate"),
    benchmark:
        benchmark_file("fluxnet_calibrate")
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
        driver=rules.fluxnet_driver.output.driver,
        crossval=expand(
            rules.fluxnet_crossval.output.predictions, setup=SETUPS["sites"], allow_missing=True
        )
        + baseline_crossval(),
        calibration=rules.fluxnet_calibrate.output.calibration,
        dynamic_crossval=lambda w: dynamic_outputs("crossval", w.study),
        dynamic_calibration=lambda w: dynamic_outputs("calibration", w.study),
        code=code("fluxnet_evaluate"),
    output:
        heldout=report(
            study_file("evaluation/heldout_sites.csv"),
            caption="../report/heldout_sites.rst",
            category="Held-out sites",
            labels={"table": "per site"},
        ),
        medians=report(
            study_file("evaluation/heldout_medians.csv"),
            caption="../report/heldout_medians.rst",
            category="Held-out sites",
            labels={"table": "medians"},
        ),
        metrics=report(
            study_file("evaluation/metrics.csv"),
            caption="../report/metrics.rst",
            category="Skill",
            labels={"table": "metrics"},
        ),
    log:
        log_file("fluxnet_evaluate"),
    benchmark:
        benchmark_file("fluxnet_evaluate")
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
        heldout=rules.fluxnet_evaluate.output.heldout,
        medians=rules.fluxnet_evaluate.output.medians,
        code=code("fluxnet_figure"),
    output:
        figure=report(
            study_file("figures/heldout_nse.png"),
            caption="../report/heldout_figure.rst",
            category="Held-out sites",
            labels={"figure": "NSE"},
        ),
        figure_pdf=study_file("figures/heldout_nse.pdf"),
    log:
        log_file("fluxnet_figure"),
    benchmark:
        benchmark_file("fluxnet_figure")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/fluxnet_figure.py"
