rule partition:
    input:
        metrics=f"results/{STUDY}/evaluation/metrics.csv",
        maps=expand("results/{{study}}/evaluation/{{grid}}/{setup}/skill_maps.nc", setup=FACTORIAL if GRIDDED else []),
        code=code("partition"),
    output:
        table=report(
            "results/{study}/partition/{grid}/global.csv",
            caption="../report/partition_table.rst", category="Hierarchical partitioning", labels={"grid": "{grid}", "table": "global"},
        ),
        bars=report(
            "results/{study}/partition/{grid}/bars.png",
            caption="../report/partition_bars.rst", category="Hierarchical partitioning", labels={"grid": "{grid}", "figure": "bars"},
        ),
        bars_pdf="results/{study}/partition/{grid}/bars.pdf",
        cell_maps=(
            [
                "results/{study}/partition/{grid}/cells.nc",
                report(
                    "results/{study}/partition/{grid}/maps.png",
                    caption="../report/partition_maps.rst", category="Hierarchical partitioning", labels={"grid": "{grid}", "figure": "maps"},
                ),
                "results/{study}/partition/{grid}/maps.pdf",
            ]
            if GRIDDED
            else []
        ),
    params:
        groups=config["setups"]["groups"],
    log:
        "results/{study}/logs/partition/{grid}.log",
    benchmark:
        "results/{study}/benchmarks/partition/{grid}.tsv"
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
        driver="results/{study}/driver/{grid}.nc",
        weights=lambda w: identifiability_files(w, "weights.npz"),
        infos=lambda w: identifiability_files(w, "member.json"),
        selected=expand("results/{{study}}/identifiability/{{grid}}/{setup}/selected.json", setup=IDENTIFIABILITY["setups"]),
        code=code("identifiability"),
    output:
        table=report(
            "results/{study}/identifiability/{grid}/summary.csv",
            caption="../report/identifiability_table.rst", category="Identifiability", labels={"grid": "{grid}", "table": "summary"},
        ),
        cv=["results/{study}/identifiability/{grid}/cv_maps.nc"] if GRIDDED else [],
        figure=report(
            "results/{study}/identifiability/{grid}/median_cv.png",
            caption="../report/identifiability_bars.rst", category="Identifiability", labels={"grid": "{grid}", "figure": "median CV"},
        ),
        figure_pdf="results/{study}/identifiability/{grid}/median_cv.pdf",
    params:
        setups=IDENTIFIABILITY["setups"],
        threshold=IDENTIFIABILITY["threshold"],
    log:
        "results/{study}/logs/identifiability/{grid}.log",
    benchmark:
        "results/{study}/benchmarks/identifiability/{grid}.tsv"
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
        params=f"results/{{study}}/params/{{grid}}/{config['pca']['setup']}.nc",
        identifiability="results/{study}/identifiability/{grid}/summary.csv",
        truth=truth_file,
        code=code("pca"),
    output:
        ratio=report(
            "results/{study}/pca/{grid}/explained_variance.csv",
            caption="../report/pca_variance.rst", category="PCA", labels={"grid": "{grid}", "table": "explained variance"},
        ),
        loadings="results/{study}/pca/{grid}/loadings.csv",
        scores="results/{study}/pca/{grid}/scores.nc",
        biplot=report(
            "results/{study}/pca/{grid}/biplot.png",
            caption="../report/pca_biplot.rst", category="PCA", labels={"grid": "{grid}", "figure": "biplot"},
        ),
        biplot_pdf="results/{study}/pca/{grid}/biplot.pdf",
        maps=report(
            "results/{study}/pca/{grid}/score_maps.png",
            caption="../report/pca_maps.rst", category="PCA", labels={"grid": "{grid}", "figure": "score maps"},
        ),
        maps_pdf="results/{study}/pca/{grid}/score_maps.pdf",
        congruence=["results/{study}/pca/{grid}/congruence.csv"] if TRUTH else [],
    params:
        setup=config["pca"]["setup"],
    log:
        "results/{study}/logs/pca/{grid}.log",
    benchmark:
        "results/{study}/benchmarks/pca/{grid}.tsv"
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
        driver="results/{study}/driver/{grid}.nc",
        selected="results/{study}/train/{grid}/{setup}/selected.json",
        weights=lambda w: member_files(w, "weights.npz"),
        infos=lambda w: member_files(w, "member.json"),
        code=code("shap"),
    output:
        importance="results/{study}/shap/{grid}/{setup}/importance.csv",
        groups="results/{study}/shap/{grid}/{setup}/group_importance.csv",
        members="results/{study}/shap/{grid}/{setup}/member_importance.csv",
        conditional="results/{study}/shap/{grid}/{setup}/conditional_importance.csv",
        values="results/{study}/shap/{grid}/{setup}/shap_values.nc",
        figure=report(
            "results/{study}/shap/{grid}/{setup}/dependence.png",
            caption="../report/shap_dependence.rst", category="Kernel SHAP", labels={"grid": "{grid}", "setup": "{setup}"},
        ),
        figure_pdf="results/{study}/shap/{grid}/{setup}/dependence.pdf",
        truth=expand(
            "results/{{study}}/shap/{{grid}}/{{setup}}/{name}",
            name=["truth_importance.csv", "truth_group_importance.csv", "truth_rank_correlation.csv"] if TRUTH else [],
        ),
    params:
        shap=config["shap"],
        seed=config["seed"],
        truth=TRUTH,
    log:
        "results/{study}/logs/shap/{grid}/{setup}.log",
    benchmark:
        "results/{study}/benchmarks/shap/{grid}/{setup}.tsv"
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
        importance=expand("results/{{study}}/shap/{{grid}}/{setup}/importance.csv", setup=config["shap"]["setups"]),
        groups=expand("results/{{study}}/shap/{{grid}}/{setup}/group_importance.csv", setup=config["shap"]["setups"]),
        code=code("gather_shap"),
    output:
        importance=report(
            "results/{study}/shap/{grid}/importance.csv",
            caption="../report/shap_importance.rst", category="Kernel SHAP", labels={"grid": "{grid}", "setup": "all", "table": "importance"},
        ),
        figure=report(
            "results/{study}/shap/{grid}/group_shares.png",
            caption="../report/shap_groups.rst", category="Kernel SHAP", labels={"grid": "{grid}", "setup": "all", "figure": "group shares"},
        ),
        figure_pdf="results/{study}/shap/{grid}/group_shares.pdf",
    log:
        "results/{study}/logs/gather_shap/{grid}.log",
    benchmark:
        "results/{study}/benchmarks/gather_shap/{grid}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/gather_shap.py"
