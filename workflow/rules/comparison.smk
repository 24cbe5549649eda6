rule comparison:
    input:
        metrics=study_file("evaluation/metrics.csv"),
        **only_if(FLUXNET, medians=rules.fluxnet_evaluate.output.medians),
        code=code("comparison"),
    output:
        table=report(
            study_file("evaluation/comparison.csv"),
            caption="../report/comparison.rst",
            category="Model comparison",
            labels={"table": "comparison"},
        ),
        figure=report(
            study_file("evaluation/comparison.png"),
            caption="../report/comparison.rst",
            category="Model comparison",
            labels={"figure": "comparison"},
        ),
        figure_pdf=study_file("evaluation/comparison.pdf"),
    params:
        full_setup=FACTORIAL[-1],
    log:
        log_file("comparison"),
    benchmark:
        benchmark_file("comparison")
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/comparison.py"
