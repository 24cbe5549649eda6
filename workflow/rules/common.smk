"""Helpers shared by the rule files; the only place functions live."""

import re

from hybridland.imports import imported_modules

from hybridland import config as study_config
from hybridland.training.setups import factorial, setup_name

study_config.check_files(workflow.configfiles)  # strict YAML: a duplicate key is an error
study_config.check(config)

STUDY = config["study"]
SETUPS = study_config.setups_per_grid(config)
ALL_SETUPS = sorted({s for names in SETUPS.values() for s in names})
MEMBERS = [f"{m:02d}" for m in range(config["training"]["members"])]
PROGRAM = config["training"]["program"]  # what one training job trains: grid, setup or member
FACTORIAL = factorial(config["setups"]["groups"])
TRUTH = config["source"] == "twin"  # the twin knows its true parameters
ANALYSIS_GRIDS = config["analyses"]["grids"]
IDENTIFIABILITY = config["identifiability"]
# A dedicated ensemble's first members are the factorial's own (same seed, same member number).
IDENTIFIABILITY_MEMBERS = [f"{m:02d}" for m in range(IDENTIFIABILITY["members"])]
EXTRA_MEMBERS = IDENTIFIABILITY_MEMBERS[len(MEMBERS):]
FLUXNET = config["source"] == "fluxnet16"
# Sources whose cells lie on a lat/lon lattice (maps); FLUXNET16's cells are sites.
GRIDDED = not FLUXNET
SHAP_SETUPS = config["shap"]["setups"]
# The setups whose skill maps the partition reads (none where cells are sites, not maps).
SKILL_MAP_SETUPS = FACTORIAL if GRIDDED else []
# The pure machine-learning baselines (baselines.smk): which, on which grid, and the full setup
# whose parameters ConvLSTM+DALEC reads.
BASELINES = config["baselines"]
BASELINE_GRID = {
    "LSTM": BASELINES["lstm_grid"],
    "ConvLSTM": BASELINES["conv_grid"],
    "ConvLSTM+DALEC": BASELINES["conv_grid"],
}
FULL_SETUP = setup_name(config["setups"]["groups"])
# Every trained (grid, setup) pair, as two lists for expand(..., zip).
TRAINED = {
    "grid": [grid for grid, names in SETUPS.items() for _ in names],
    "setup": [setup for names in SETUPS.values() for setup in names],
}


wildcard_constraints:
    study=STUDY,
    grid="|".join(config["grids"]),
    dataset="|".join(config["datasets"]),
    setup="|".join(re.escape(s) for s in ALL_SETUPS),
    member=r"\d\d",


def code(script):
    """The script and every hybridland module it imports, directly or not, so that editing
    any of them reruns the jobs that use it (derived from the imports, so it cannot lag them)."""
    return [f"workflow/scripts/{script}.py", *imported_modules(f"workflow/scripts/{script}.py")]


# Connections, the same in every file of rules.
# - Paths. Each kind of output has one helper below that returns its template. Escaping style,
#   the only one used: templates are plain strings with Snakemake's wildcards in single braces
#   ({study}, {grid}, {setup}, {member}, {dataset}); no f-strings and no doubled braces. fill()
#   puts values into one template, expand(..., allow_missing=True) makes a list; both leave the
#   wildcards they are not given to Snakemake.
# - Inputs. A file that one rule, defined in an earlier file, writes is taken from it as
#   rules.<name>.output.<field>; files whose writer depends on the source or on settings (the
#   driver, member files, the twin's truth, the metrics table) come from the helpers.
# - Names. Every input and output that a script reads is named. A file per setup or grid that
#   a script must tell apart is a named input "<name>/<key>" (keyed()), looked up by its key.
#   Optional files are named entries that are absent (only_if()), read with .get(<name>).
# - Scripts hand paths to the package as keyword arguments taken from snakemake.input.<name>
#   and snakemake.output.<name>; a figure's stem is its PNG output less ".png" (the package
#   writes PNG and PDF side by side); a module that fills a folder gets it from a named output
#   (the folder it lies in; for the bundle, the folder named after its manifest).


def fill(template, **values):
    """One path: ``template`` with ``values`` put in; its other wildcards stay for Snakemake."""
    (path,) = expand(template, allow_missing=True, **values)
    return path


def keyed(name, files, **wildcards):
    """Named inputs ``<name>/<value>`` (``<name>/<value>/<value>`` for two wildcards), one per
    combination of the wildcards' values: ``files`` (a template or a list of them) filled in."""
    combinations = [[]]
    for values in wildcards.values():
        combinations = [[*done, value] for done in combinations for value in values]
    inputs = {}
    for values in combinations:
        given = dict(zip(wildcards, values))
        key = "/".join([name, *values])
        if isinstance(files, str):
            inputs[key] = fill(files, **given)
        else:
            inputs[key] = [fill(file, **given) for file in files]
    return inputs


def only_if(condition, **named):
    """Named inputs or outputs that exist only when ``condition`` holds."""
    return named if condition else {}


def raw_file(name):
    """A file of the source stage: native product, twin truth, bundle manifest."""
    return fill("results/{study}/raw/{name}", name=name)


def regridded_file(dataset):
    """A native product remapped onto the grid."""
    return fill("results/{study}/regridded/{grid}/{dataset}.nc", dataset=dataset)


def driver_file(grid):
    """The model driver of a grid (FLUXNET16: of the sites)."""
    return fill("results/{study}/driver/{grid}.nc", grid=grid)


def member_file(name):
    """A file of one trained member: ``weights.npz`` or ``member.json``."""
    return fill("results/{study}/train/{grid}/{setup}/member{member}/{name}", name=name)


def member_files(name, members=MEMBERS):
    """``name`` of each of ``members`` (default the factorial's) of one setup on one grid."""
    return expand(member_file(name), member=members, allow_missing=True)


def run_files(name, grid, runs):
    """``name`` of each [setup, member] of ``runs`` on ``grid``, in their order."""
    return [fill(member_file(name), grid=grid, setup=s, member=f"{m:02d}") for s, m in runs]


def selected_file(ensemble):
    """The kept members of a setup: ``train`` for the factorial, ``identifiability`` for a
    dedicated ensemble."""
    return fill("results/{study}/{ensemble}/{grid}/{setup}/selected.json", ensemble=ensemble)


def evaluation_file(name):
    """An evaluation output of one setup on one grid."""
    return fill("results/{study}/evaluation/{grid}/{setup}/{name}", name=name)


def params_file(setup):
    """The ensemble-mean parameter maps of a setup on a grid."""
    return fill("results/{study}/params/{grid}/{setup}.nc", setup=setup)


def analysis_file(analysis, name):
    """A table or figure of an analysis (partition, identifiability, pca, shap) on one grid."""
    return fill("results/{study}/{analysis}/{grid}/{name}", analysis=analysis, name=name)


def explained_file(name):
    """A Kernel SHAP output of one setup on one grid."""
    return fill("results/{study}/shap/{grid}/{setup}/{name}", name=name)


def study_file(name):
    """A file of the whole study: gathered tables, the scorecard, FLUXNET16's outputs."""
    return fill("results/{study}/{name}", name=name)


def baseline_file(model, name):
    """An output of a twin baseline, beside the setups' evaluations on its grid."""
    return fill(evaluation_file(name), grid=BASELINE_GRID[model], setup=model)


def baseline_metrics():
    """The metrics tables of the study's twin baselines (FLUXNET16's LSTM is scored with the
    setups)."""
    return [] if FLUXNET else [baseline_file(m, "metrics.csv") for m in BASELINES["models"]]


def baseline_crossval():
    """FLUXNET16: the LSTM's held-out predictions, scored like a setup's."""
    return [study_file("crossval/LSTM.nc")] if FLUXNET and "LSTM" in BASELINES["models"] else []


def baseline_params(model):
    """What a baseline's result depends on."""
    return dict(
        model=model,
        grid=BASELINE_GRID[model],
        baselines=BASELINES,
        groups=config["setups"]["groups"],
        dev_fraction=config["training"]["dev_fraction"],
        seed=config["seed"],
    )


def log_file(job):
    """The log of a job, ``job`` naming it below ``logs/`` (rule, then its wildcards)."""
    return fill("results/{study}/logs/{job}.log", job=job)


def benchmark_file(job):
    """The benchmark of a job, named as its log."""
    return fill("results/{study}/benchmarks/{job}.tsv", job=job)


def grid_config(grid):
    """The analysis grid `grid` cut to the study region."""
    return {"name": grid, "box": config["region"]}


def twin_config():
    """Synthesis settings: the twin section plus the study's region, period and seed."""
    period = config["period"]
    return dict(
        config.get("twin", {}),
        box=config["region"],
        years=[period["first_year"], period["last_year"]],
        seed=config["seed"],
    )


def training_params():
    """The training settings a member's result depends on (not how many are kept, nor the
    job it trains in)."""
    excluded = ("members", "keep_best", "program")
    return {k: v for k, v in config["training"].items() if k not in excluded}


def train_job(runs):
    """Settings of a training job: ``runs`` are its [setup, member] pairs, or a function of
    the wildcards that gives them."""
    return dict(training=training_params(), loss=config["loss"], seed=config["seed"], runs=runs)


def setup_runs(members):
    """The [setup, member] pairs of ``members`` of the job's setup, from its wildcards."""
    return lambda wildcards: [[wildcards.setup, int(m)] for m in members]


def study_outputs():
    """What `snakemake` builds by default for the study's source (for the last rule, all)."""
    if FLUXNET:
        evaluation, figure = rules.fluxnet_evaluate.output, rules.fluxnet_figure.output
        targets = [evaluation.heldout, evaluation.medians, evaluation.metrics]
        targets += [figure.figure, figure.figure_pdf]
    else:
        targets = [rules.gather_metrics.output.metrics]
        if TRUTH:
            targets += [rules.gather_metrics.output.recovery, rules.scorecard.output.table]
    targets.append(rules.comparison.output.table)
    # The tables of each analysis grid (their rules bring the figures).
    tables = [rules.partition.output.table, rules.identifiability.output.table]
    if GRIDDED:  # PCA maps the parameters
        tables.append(rules.pca.output.ratio)
    if SHAP_SETUPS:
        tables.append(rules.gather_shap.output.importance)
    analyses = [fill(table, grid=grid) for grid in ANALYSIS_GRIDS for table in tables]
    return [fill(target, study=STUDY) for target in targets + analyses]
