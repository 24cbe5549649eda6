# One JAX program and one job per grid (every setup it trains), per setup or per member
# (training.program); a member's result is the same in each, to float32 rounding. The
# identifiability's extra members train in a job per setup beside them (one per member under
# "member"), so that changing their number retrains no factorial member.


if PROGRAM == "grid":
    for grid, names in SETUPS.items():
        grid_runs = [[setup, int(m)] for setup in names for m in MEMBERS]

        rule:
            name:
                f"train_grid_{grid}"
            input:
                driver=driver_file(grid),
                code=code("train_members"),
            output:
                weights=run_files("weights.npz", grid, grid_runs),
                infos=run_files("member.json", grid, grid_runs),
            params:
                **train_job(grid_runs),
            log:
                fill(log_file("train/{grid}"), grid=grid),
            benchmark:
                fill(benchmark_file("train/{grid}"), grid=grid)
            threads: 1
            # The grid with the most setups is the longest job and every analysis waits for
            # it: start it first (on the twin it otherwise waited 5.5 minutes for the others).
            priority: len(names)
            # measured on the twin's 0.25-degree grid (17 setups x 3 members): 1.3 GB, about
            # 4 CPU-s per epoch
            resources:
                mem_mb=4000,
                runtime=60 * len(names),
            conda:
                "../../envs/core.yaml"
            script:
                "../scripts/train_members.py"


if PROGRAM == "member":

    rule train_member:
        input:
            driver=driver_file("{grid}"),
            code=code("train_members"),
        output:
            weights=[member_file("weights.npz")],
            infos=[member_file("member.json")],
        params:
            **train_job(lambda w: [[w.setup, int(w.member)]]),
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
            "../scripts/train_members.py"

else:
    # name -> (members, setups it serves, log suffix)
    SETUP_JOBS = {"train_setup": (MEMBERS, ALL_SETUPS, "")} if PROGRAM == "setup" else {}
    if EXTRA_MEMBERS:
        SETUP_JOBS["train_extra_members"] = (EXTRA_MEMBERS, IDENTIFIABILITY["setups"], ".extra")
    for job, (numbers, served, suffix) in SETUP_JOBS.items():

        rule:
            name:
                job
            input:
                driver=driver_file("{grid}"),
                code=code("train_members"),
            output:
                weights=member_files("weights.npz", numbers),
                infos=member_files("member.json", numbers),
            params:
                **train_job(setup_runs(numbers)),
            log:
                log_file(f"train/{{grid}}/{{setup}}{suffix}"),
            benchmark:
                benchmark_file(f"train/{{grid}}/{{setup}}{suffix}")
            wildcard_constraints:
                setup="|".join(re.escape(s) for s in served),
            threads: 1
            resources:
                mem_mb=4000,
                runtime=240,
            conda:
                "../../envs/core.yaml"
            script:
                "../scripts/train_members.py"


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
