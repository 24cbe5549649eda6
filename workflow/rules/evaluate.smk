rule evaluate_setup:
    input:
        driver="results/{study}/driver/{grid}.nc",
        selected="results/{study}/train/{grid}/{setup}/selected.json",
        weights=lambda w: member_files(w, "weights.npz"),
        infos=lambda w: member_files(w, "member.json"),
        truth=truth_file,
        code=code("evaluate_setup"),
    output:
        metrics="results/{study}/evaluation/{grid}/{setup}/metrics.csv",
        recovery="results/{study}/evaluation/{grid}/{setup}/recovery.csv",
        maps="results/{study}/evaluation/{grid}/{setup}/skill_maps.nc",
        simulated="results/{study}/evaluation/{grid}/{setup}/simulated_test.nc",
        params="results/{study}/params/{grid}/{setup}.nc",
    log:
        "results/{study}/logs/evaluate_setup/{grid}/{setup}.log",
    benchmark:
        "results/{study}/benchmarks/evaluate_setup/{grid}/{setup}.tsv"
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
        metrics=evaluation_files("metrics.csv"),
        recovery=evaluation_files("recovery.csv"),
        code=code("gather_metrics"),
    output:
        metrics=report("results/{study}/evaluation/metrics.csv", caption="../report/metrics.rst", category="Skill", labels={"table": "metrics"}),
        recovery=report("results/{study}/evaluation/recovery.csv", caption="../report/recovery.rst", category="Skill", labels={"table": "truth recovery"}),
    log:
        "results/{study}/logs/gather_metrics.log",
    benchmark:
        "results/{study}/benchmarks/gather_metrics.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/gather_metrics.py"
