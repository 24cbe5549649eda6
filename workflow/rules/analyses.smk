rule partition:
    input:
        # gather_metrics writes it, or fluxnet_evaluate for FLUXNET16
        metrics=study_file("evaluation/metrics.csv"),
        **keyed("skill_maps", evaluation_file("skill_maps.nc"), setup=SKILL_MAP_SETUPS),
        code=code("partition"),
    output:
        table=report(
            analysis_file("partition", "global.csv"),
            caption="../report/partition_table.rst",
            category="Hierarchical partitioning",
            labels={"grid": "{grid}", "table": "global"},
        ),
        bars=report(
            analysis_file("partition", "bars.png"),
            caption="../report/partition_bars.rst",
            category="Hierarchical partitioning",
            labels={"grid": "{grid}", "figure": "bars"},
        ),
        bars_pdf=analysis_file("partition", "bars.pdf"),
        **only_if(
            GRIDDED,
            cells=analysis_file("partition", "cells.nc"),
            maps=report(
                analysis_file("partition", "maps.png"),
                caption="../report/partition_maps.rst",
                category="Hierarchical partitioning",
                labels={"grid": "{grid}", "figure": "maps"},
            ),
            maps_pdf=analysis_file("partition", "maps.pdf"),
        ),
    params:
        groups=config["setups"]["groups"],
        skill_map_setups=SKILL_MAP_SETUPS,
    log:
        log_file("partition/{grid}"),
    benchmark:
        benchmark_file("partition/{grid}")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/partition.py"


rule identifiability:
    input:
        driver=driver_file("{grid}"),
        **keyed(
            "weights",
            member_files("weights.npz", IDENTIFIABILITY_MEMBERS),
            setup=IDENTIFIABILITY["setups"],
        ),
        **keyed(
            "infos",
            member_files("member.json", IDENTIFIABILITY_MEMBERS),
            setup=IDENTIFIABILITY["setups"],
        ),
        **keyed(
            "selected",
            rules.select_identifiability.output.selected,
            setup=IDENTIFIABILITY["setups"],
        ),
        code=code("identifiability"),
    output:
        table=report(
            analysis_file("identifiability", "summary.csv"),
            caption="../report/identifiability_table.rst",
            category="Identifiability",
            labels={"grid": "{grid}", "table": "summary"},
        ),
        fisher=analysis_file("identifiability", "fisher.csv"),
        pairs=analysis_file("identifiability", "equifinal_pairs.csv"),
        **only_if(GRIDDED, cv=analysis_file("identifiability", "cv_maps.nc")),
        figure=report(
            analysis_file("identifiability", "median_cv.png"),
            caption="../report/identifiability_bars.rst",
            category="Identifiability",
            labels={"grid": "{grid}", "figure": "median CV"},
        ),
        figure_pdf=analysis_file("identifiability", "median_cv.pdf"),
        fisher_figure=report(
            analysis_file("identifiability", "fisher.png"),
            caption="../report/identifiability_fisher.rst",
            category="Identifiability",
            labels={"grid": "{grid}", "figure": "Fisher sensitivity"},
        ),
        fisher_figure_pdf=analysis_file("identifiability", "fisher.pdf"),
    params:
        setups=IDENTIFIABILITY["setups"],
        threshold=IDENTIFIABILITY["threshold"],
        fisher_threshold=IDENTIFIABILITY["fisher_threshold"],
        fisher_cells=IDENTIFIABILITY["fisher_cells"],
        loss=config["loss"],
        seed=config["seed"],
    log:
        log_file("identifiability/{grid}"),
    benchmark:
        benchmark_file("identifiability/{grid}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/identifiability.py"


rule pca:
    input:
        params=params_file(config["pca"]["setup"]),
        identifiability=rules.identifiability.output.table,
        **only_if(TRUTH, truth=regridded_file("truth_parameters")),
        code=code("pca"),
    output:
        ratio=report(
            analysis_file("pca", "explained_variance.csv"),
            caption="../report/pca_variance.rst",
            category="PCA",
            labels={"grid": "{grid}", "table": "explained variance"},
        ),
        loadings=analysis_file("pca", "loadings.csv"),
        scores=analysis_file("pca", "scores.nc"),
        biplot=report(
            analysis_file("pca", "biplot.png"),
            caption="../report/pca_biplot.rst",
            category="PCA",
            labels={"grid": "{grid}", "figure": "biplot"},
        ),
        biplot_pdf=analysis_file("pca", "biplot.pdf"),
        maps=report(
            analysis_file("pca", "score_maps.png"),
            caption="../report/pca_maps.rst",
            category="PCA",
            labels={"grid": "{grid}", "figure": "score maps"},
        ),
        maps_pdf=analysis_file("pca", "score_maps.pdf"),
        **only_if(TRUTH, congruence=analysis_file("pca", "congruence.csv")),
    params:
        setup=config["pca"]["setup"],
        quantities=config["pca"]["quantities"],
    log:
        log_file("pca/{grid}"),
    benchmark:
        benchmark_file("pca/{grid}")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/pca.py"


rule shap:
    input:
        driver=driver_file("{grid}"),
        identifiability=rules.identifiability.output.table,
        selected=rules.select_members.output.selected,
        weights=member_files("weights.npz"),
        infos=member_files("member.json"),
        code=code("shap"),
    output:
        importance=explained_file("importance.csv"),
        groups=explained_file("group_importance.csv"),
        members=explained_file("member_importance.csv"),
        conditional=explained_file("conditional_importance.csv"),
        values=explained_file("shap_values.nc"),
        figure=report(
            explained_file("dependence.png"),
            caption="../report/shap_dependence.rst",
            category="Kernel SHAP",
            labels={"grid": "{grid}", "setup": "{setup}"},
        ),
        figure_pdf=explained_file("dependence.pdf"),
        **only_if(
            TRUTH,
            truth_importance=explained_file("truth_importance.csv"),
            truth_groups=explained_file("truth_group_importance.csv"),
            truth_ranks=explained_file("truth_rank_correlation.csv"),
        ),
    params:
        shap=config["shap"],
        seed=config["seed"],
        truth=TRUTH,
    log:
        log_file("shap/{grid}/{setup}"),
    benchmark:
        benchmark_file("shap/{grid}/{setup}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/shap.py"


rule gather_shap:
    input:
        importance=expand(rules.shap.output.importance, setup=SHAP_SETUPS, allow_missing=True),
        groups=expand(rules.shap.output.groups, setup=SHAP_SETUPS, allow_missing=True),
        code=code("gather_shap"),
    output:
        importance=report(
            analysis_file("shap", "importance.csv"),
            caption="../report/shap_importance.rst",
            category="Kernel SHAP",
            labels={"grid": "{grid}", "setup": "all", "table": "importance"},
        ),
        figure=report(
            analysis_file("shap", "group_shares.png"),
            caption="../report/shap_groups.rst",
            category="Kernel SHAP",
            labels={"grid": "{grid}", "setup": "all", "figure": "group shares"},
        ),
        figure_pdf=analysis_file("shap", "group_shares.pdf"),
    log:
        log_file("gather_shap/{grid}"),
    benchmark:
        benchmark_file("gather_shap/{grid}")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/gather_shap.py"
