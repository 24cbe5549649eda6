rule comparison:
    input:
        metrics=study_file("evaluation/metrics.csv"),
        # fluxnet_evaluate writes it on FLUXNET16
        **only_if(FLUXNET, medians=study_file("evaluation/heldout_medians.csv")),
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
