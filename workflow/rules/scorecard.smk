rule sensitivity:
    input:
        driver=rules.assemble_driver.output.driver,
        truth=fill(rules.regrid.output.regridded, dataset="truth_parameters"),
        code=code("sensitivity"),
    output:
        sensitivity=analysis_file("identifiability", "sensitivity.csv"),
        pairs=analysis_file("identifiability", "equifinal_pairs_truth.csv"),
        truth_skill=report(
            analysis_file("evaluation", "truth_skill.csv"),
            caption="../report/truth_skill.rst",
            category="Skill",
            labels={"grid": "{grid}", "table": "skill of the truth"},
        ),
    params:
        seed=config["seed"],
        loss=config["loss"],
        fisher_threshold=IDENTIFIABILITY["fisher_threshold"],
    log:
        log_file("sensitivity/{grid}"),
    benchmark:
        benchmark_file("sensitivity/{grid}")
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/sensitivity.py"


rule scorecard:
    input:
        **keyed("ranks", rules.shap.output.truth_ranks, grid=ANALYSIS_GRIDS, setup=SHAP_SETUPS),
        **keyed("groups", rules.shap.output.groups, grid=ANALYSIS_GRIDS, setup=SHAP_SETUPS),
        **keyed("identifiability", rules.identifiability.output.table, grid=ANALYSIS_GRIDS),
        **keyed("sensitivity", rules.sensitivity.output.sensitivity, grid=ANALYSIS_GRIDS),
        **keyed("truth_pairs", rules.sensitivity.output.pairs, grid=ANALYSIS_GRIDS),
        **keyed("pairs", rules.identifiability.output.pairs, grid=ANALYSIS_GRIDS),
        **keyed("congruence", rules.pca.output.congruence, grid=ANALYSIS_GRIDS),
        **keyed("partition", rules.partition.output.table, grid=ANALYSIS_GRIDS),
        **{
            key: path
            for grid in ANALYSIS_GRIDS
            for key, path in keyed(
                "selected", rules.select_members.output.selected, grid=[grid], setup=SETUPS[grid]
            ).items()
        },
        **keyed("truth", regridded_file("truth_parameters"), grid=ANALYSIS_GRIDS),
        metrics=rules.gather_metrics.output.metrics,
        recovery=rules.gather_metrics.output.recovery,
        code=code("scorecard"),
    output:
        table=report(
            study_file("scorecard.csv"),
            caption="../report/scorecard.rst",
            category="Twin scorecard",
            labels={"table": "scorecard"},
        ),
        figure=report(
            study_file("scorecard.png"),
            caption="../report/scorecard.rst",
            category="Twin scorecard",
            labels={"figure": "scorecard"},
        ),
        figure_pdf=study_file("scorecard.pdf"),
    params:
        grids=ANALYSIS_GRIDS,
        shap_setups=SHAP_SETUPS,
        setups={grid: SETUPS[grid] for grid in ANALYSIS_GRIDS},
        groups=config["setups"]["groups"],
    log:
        log_file("scorecard"),
    benchmark:
        benchmark_file("scorecard")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/scorecard.py"
