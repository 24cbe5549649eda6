# The pure machine-learning baselines (docs/baselines.md), one rule and one job each. The twin's
# are scored beside the setups (gather_metrics); FLUXNET16's LSTM predicts held-out sites in the
# layout of fluxnet_crossval and is scored with the setups (fluxnet_evaluate).


if FLUXNET and "LSTM" in BASELINES["models"]:

    rule fluxnet_lstm:
        input:
            driver=rules.fluxnet_driver.output.driver,
            code=code("fluxnet_lstm"),
        output:
            predictions=study_file("crossval/LSTM.nc"),
            runs=study_file("crossval/LSTM.json"),
        params:
            **baseline_params("LSTM"),
            schemes=config["fluxnet"]["schemes"],
        log:
            log_file("fluxnet_lstm"),
        benchmark:
            benchmark_file("fluxnet_lstm")
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        conda:
            "../../envs/core.yaml"
        script:
            "../scripts/fluxnet_lstm.py"


if not FLUXNET and "LSTM" in BASELINES["models"]:

    rule baseline_lstm:
        input:
            driver=driver_file(BASELINE_GRID["LSTM"]),
            code=code("baseline"),
        output:
            metrics=baseline_file("LSTM", "metrics.csv"),
            run=baseline_file("LSTM", "run.json"),
        params:
            **baseline_params("LSTM"),
        log:
            log_file("baseline/LSTM"),
        benchmark:
            benchmark_file("baseline/LSTM")
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        conda:
            "../../envs/core.yaml"
        script:
            "../scripts/baseline.py"


if not FLUXNET and "ConvLSTM" in BASELINES["models"]:

    rule baseline_convlstm:
        input:
            driver=driver_file(BASELINE_GRID["ConvLSTM"]),
            code=code("baseline"),
        output:
            metrics=baseline_file("ConvLSTM", "metrics.csv"),
            run=baseline_file("ConvLSTM", "run.json"),
        params:
            **baseline_params("ConvLSTM"),
        log:
            log_file("baseline/ConvLSTM"),
        benchmark:
            benchmark_file("baseline/ConvLSTM")
        threads: 1
        resources:
            mem_mb=4000,
            runtime=60,
        conda:
            "../../envs/core.yaml"
        script:
            "../scripts/baseline.py"


if not FLUXNET and "ConvLSTM+DALEC" in BASELINES["models"]:

    rule baseline_convlstm_dalec:
        input:
            driver=driver_file(BASELINE_GRID["ConvLSTM+DALEC"]),
            hybrid=fill(params_file(FULL_SETUP), grid=BASELINE_GRID["ConvLSTM+DALEC"]),
            code=code("baseline"),
        output:
            metrics=baseline_file("ConvLSTM+DALEC", "metrics.csv"),
            run=baseline_file("ConvLSTM+DALEC", "run.json"),
        params:
            **baseline_params("ConvLSTM+DALEC"),
        log:
            log_file("baseline/ConvLSTM+DALEC"),
        benchmark:
            benchmark_file("baseline/ConvLSTM+DALEC")
        threads: 1
        resources:
            mem_mb=4000,
            runtime=60,
        conda:
            "../../envs/core.yaml"
        script:
            "../scripts/baseline.py"
