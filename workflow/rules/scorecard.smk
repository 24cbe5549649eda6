rule sensitivity:
    input:
        driver="results/{study}/driver/{grid}.nc",
        truth="results/{study}/regridded/{grid}/truth_parameters.nc",
        code=code("sensitivity"),
    output:
        "results/{study}/identifiability/{grid}/sensitivity.csv",
    params:
        seed=config["seed"],
    log:
        "results/{study}/logs/sensitivity/{grid}.log",
    benchmark:
        "results/{study}/benchmarks/sensitivity/{grid}.tsv"
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
        ranks=expand("results/{{study}}/shap/{grid}/{setup}/truth_rank_correlation.csv", grid=ANALYSIS_GRIDS, setup=config["shap"]["setups"]),
        groups=expand("results/{{study}}/shap/{grid}/{setup}/group_importance.csv", grid=ANALYSIS_GRIDS, setup=config["shap"]["setups"]),
        identifiability=expand("results/{{study}}/identifiability/{grid}/summary.csv", grid=ANALYSIS_GRIDS),
        sensitivity=expand("results/{{study}}/identifiability/{grid}/sensitivity.csv", grid=ANALYSIS_GRIDS),
        congruence=expand("results/{{study}}/pca/{grid}/congruence.csv", grid=ANALYSIS_GRIDS),
        partition=expand("results/{{study}}/partition/{grid}/global.csv", grid=ANALYSIS_GRIDS),
        code=code("scorecard"),
    output:
        table=report("results/{study}/scorecard.csv", caption="../report/scorecard.rst", category="Twin scorecard", labels={"table": "scorecard"}),
        figure=report("results/{study}/scorecard.png", caption="../report/scorecard.rst", category="Twin scorecard", labels={"figure": "scorecard"}),
        figure_pdf="results/{study}/scorecard.pdf",
    params:
        grids=ANALYSIS_GRIDS,
        shap_setups=config["shap"]["setups"],
        groups=config["setups"]["groups"],
    log:
        "results/{study}/logs/scorecard.log",
    benchmark:
        "results/{study}/benchmarks/scorecard.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/scorecard.py"
