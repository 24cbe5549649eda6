if config["training"]["group_members"]:

    rule train_setup:
        input:
            driver="results/{study}/driver/{grid}.nc",
            code=code("train_setup"),
        output:
            weights=expand("results/{{study}}/train/{{grid}}/{{setup}}/member{member}/weights.npz", member=MEMBERS),
            infos=expand("results/{{study}}/train/{{grid}}/{{setup}}/member{member}/member.json", member=MEMBERS),
        params:
            training=training_params(),
            loss=config["loss"],
            seed=config["seed"],
            members=[int(m) for m in MEMBERS],
        log:
            "results/{study}/logs/train/{grid}/{setup}.log",
        benchmark:
            "results/{study}/benchmarks/train/{grid}/{setup}.tsv"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=240,
        conda:
            "../../envs/core.yaml"
        script:
            "../scripts/train_setup.py"

    if EXTRA_MEMBERS:

        use rule train_setup as train_extra_members with:
            output:
                weights=expand("results/{{study}}/train/{{grid}}/{{setup}}/member{member}/weights.npz", member=EXTRA_MEMBERS),
                infos=expand("results/{{study}}/train/{{grid}}/{{setup}}/member{member}/member.json", member=EXTRA_MEMBERS),
            params:
                training=training_params(),
                loss=config["loss"],
                seed=config["seed"],
                members=[int(m) for m in EXTRA_MEMBERS],
            log:
                "results/{study}/logs/train/{grid}/{setup}.extra.log",
            benchmark:
                "results/{study}/benchmarks/train/{grid}/{setup}.extra.tsv"
            wildcard_constraints:
                setup="|".join(re.escape(s) for s in IDENTIFIABILITY["setups"]),

else:

    rule train_member:
        input:
            driver="results/{study}/driver/{grid}.nc",
            code=code("train_member"),
        output:
            weights="results/{study}/train/{grid}/{setup}/member{member}/weights.npz",
            info="results/{study}/train/{grid}/{setup}/member{member}/member.json",
        params:
            training=training_params(),
            loss=config["loss"],
            seed=config["seed"],
        log:
            "results/{study}/logs/train/{grid}/{setup}/member{member}.log",
        benchmark:
            "results/{study}/benchmarks/train/{grid}/{setup}/member{member}.tsv"
        threads: 1
        resources:
            mem_mb=3000,
            runtime=120,
        conda:
            "../../envs/core.yaml"
        script:
            "../scripts/train_member.py"


rule select_members:
    input:
        infos=lambda w: member_files(w, "member.json"),
        code=code("select_members"),
    output:
        "results/{study}/train/{grid}/{setup}/selected.json",
    params:
        keep=config["training"]["keep_best"],
    log:
        "results/{study}/logs/select_members/{grid}/{setup}.log",
    benchmark:
        "results/{study}/benchmarks/select_members/{grid}/{setup}.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/select_members.py"


use rule select_members as select_identifiability with:
    input:
        infos=lambda w: member_files(w, "member.json", IDENTIFIABILITY_MEMBERS),
        code=code("select_members"),
    output:
        "results/{study}/identifiability/{grid}/{setup}/selected.json",
    params:
        keep=IDENTIFIABILITY["keep_best"],
    log:
        "results/{study}/logs/select_identifiability/{grid}/{setup}.log",
    benchmark:
        "results/{study}/benchmarks/select_identifiability/{grid}/{setup}.tsv"
