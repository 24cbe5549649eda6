if config["training"]["group_members"]:

    rule train_setup:
        input:
            driver=driver_file("{grid}"),
            code=code("train_setup"),
        output:
            weights=member_files("weights.npz"),
            infos=member_files("member.json"),
        params:
            training=training_params(),
            loss=config["loss"],
            seed=config["seed"],
            members=[int(m) for m in MEMBERS],
        log:
            log_file("train/{grid}/{setup}"),
        benchmark:
            benchmark_file("train/{grid}/{setup}")
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
                weights=member_files("weights.npz", EXTRA_MEMBERS),
                infos=member_files("member.json", EXTRA_MEMBERS),
            params:
                training=training_params(),
                loss=config["loss"],
                seed=config["seed"],
                members=[int(m) for m in EXTRA_MEMBERS],
            log:
                log_file("train/{grid}/{setup}.extra"),
            benchmark:
                benchmark_file("train/{grid}/{setup}.extra")
            wildcard_constraints:
                setup="|".join(re.escape(s) for s in IDENTIFIABILITY["setups"]),

else:

    rule train_member:
        input:
            driver=driver_file("{grid}"),
            code=code("train_member"),
        output:
            weights=member_file("weights.npz"),
            info=member_file("member.json"),
        params:
            training=training_params(),
            loss=config["loss"],
            seed=config["seed"],
        log:
            log_file("train/{grid}/{setup}/member{member}"),
        benchmark:
            benchmark_file("train/{grid}/{setup}/member{member}")
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
        infos=member_files("member.json"),
        code=code("select_members"),
    output:
        selected=selected_file("train"),
    params:
        keep=config["training"]["keep_best"],
    log:
        log_file("select_members/{grid}/{setup}"),
    benchmark:
        benchmark_file("select_members/{grid}/{setup}")
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
        infos=member_files("member.json", IDENTIFIABILITY_MEMBERS),
        code=code("select_members"),
    output:
        selected=selected_file("identifiability"),
    params:
        keep=IDENTIFIABILITY["keep_best"],
    log:
        log_file("select_identifiability/{grid}/{setup}"),
    benchmark:
        benchmark_file("select_identifiability/{grid}/{setup}")
