rule evaluate_setup:
    input:
        driver=driver_file("{grid}"),
        selected=rules.select_members.output.selected,
        weights=member_files("weights.npz"),
        infos=member_files("member.json"),
        **only_if(TRUTH, truth=regridded_file("truth_parameters")),
        code=code("evaluate_setup"),
    output:
        metrics=evaluation_file("metrics.csv"),
        recovery=evaluation_file("recovery.csv"),
        maps=evaluation_file("skill_maps.nc"),
        simulated=evaluation_file("simulated_test.nc"),
        params=params_file("{setup}"),
    log:
        log_file("evaluate_setup/{grid}/{setup}"),
    benchmark:
        benchmark_file("evaluate_setup/{grid}/{setup}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/evaluate_setup.py"


rule gather_metrics:
    input:
        metrics=expand(rules.evaluate_setup.output.metrics, zip, **TRAINED, allow_missing=True),
        recovery=expand(rules.evaluate_setup.output.recovery, zip, **TRAINED, allow_missing=True),
        baselines=baseline_metrics(),
        code=code("gather_metrics"),
    output:
        metrics=report(
            study_file("evaluation/metrics.csv"),
            caption="../report/metrics.rst",
            category="Skill",
            labels={"table": "metrics"},
        ),
        recovery=report(
            study_file("evaluation/recovery.csv"),
            caption="../report/recovery.rst",
            category="Skill",
            labels={"table": "truth recovery"},
        ),
    log:
        log_file("gather_metrics"),
    benchmark:
        benchmark_file("gather_metrics")
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/gather_metrics.py"
