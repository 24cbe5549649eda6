"""Helpers shared by the rule files; the only place functions live."""

import re

from hybridland.imports import imported_modules

from hybridland import config as study_config
from hybridland.training.setups import factorial

study_config.check_files(workflow.configfiles)  # strict YAML: a duplicate key is an error
study_config.check(config)

STUDY = config["study"]
SETUPS = study_config.setups_per_grid(config)
ALL_SETUPS = sorted({s for names in SETUPS.values() for s in names})
MEMBERS = [f"{m:02d}" for m in range(config["training"]["members"])]
FACTORIAL = factorial(config["setups"]["groups"])
TRUTH = config["source"] == "twin"  # the twin knows its true parameters
ANALYSIS_GRIDS = config["analyses"]["grids"]
IDENTIFIABILITY = config["identifiability"]
# A dedicated ensemble's first members are the factorial's own (same seed, same member number).
IDENTIFIABILITY_MEMBERS = [f"{m:02d}" for m in range(IDENTIFIABILITY["members"])]
EXTRA_MEMBERS = IDENTIFIABILITY_MEMBERS[len(MEMBERS):]
# Sources whose cells lie on a lat/lon lattice (maps); FLUXNET16's cells are sites.
GRIDDED = config["source"] != "fluxnet16"
# The tables of each analysis grid that the default target builds (their rules bring the figures).
ANALYSIS_TABLES = ["partition/{grid}/global.csv", "identifiability/{grid}/summary.csv"]
if GRIDDED:  # PCA maps the parameters; SHAP explains the gridded networks
    ANALYSIS_TABLES += ["pca/{grid}/explained_variance.csv"]
if config["shap"]["setups"]:
    ANALYSIS_TABLES += ["shap/{grid}/importance.csv"]


wildcard_constraints:
    study=STUDY,
    grid="|".join(config["grids"]),
    dataset="|".join(config["datasets"]),
    setup="|".join(re.escape(s) for s in ALL_SETUPS),
    member=r"\d\d",


def code(script):
    """The rule's script and every hybridland module it imports, directly or not, so that
    editing any of them reruns the rule (derived from the imports: it cannot lag them)."""
    return [f"workflow/scripts/{script}.py", *imported_modules(f"workflow/scripts/{script}.py")]


def native_path(wildcards):
    """Native file of a dataset, as the source stage writes it."""
    return f"results/{wildcards.study}/raw/{config['datasets'][wildcards.dataset]['file']}"


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


def member_files(wildcards, name, members=MEMBERS, setup=None):
    """One file of every member of a setup (default the wildcard's) on a grid."""
    return expand(
        "results/{study}/train/{grid}/{setup}/member{member}/{name}",
        study=wildcards.study, grid=wildcards.grid, setup=setup or wildcards.setup, member=members, name=name,
    )


def identifiability_files(wildcards, name):
    """One file of every member of every dedicated identifiability ensemble on a grid."""
    return [f for setup in IDENTIFIABILITY["setups"] for f in member_files(wildcards, name, IDENTIFIABILITY_MEMBERS, setup)]


def evaluation_files(name):
    """A per-setup evaluation file of every trained (grid, setup)."""
    return [
        f"results/{STUDY}/evaluation/{grid}/{setup}/{name}"
        for grid, names in SETUPS.items()
        for setup in names
    ]


def figure(stem):
    """The PNG and PDF a plotting function writes for ``stem``."""
    return [f"{stem}.png", f"{stem}.pdf"]


def truth_file(wildcards):
    """The twin's truth on the grid, for the recovery table (none for real studies)."""
    if config["source"] != "twin":
        return []
    return f"results/{wildcards.study}/regridded/{wildcards.grid}/truth_parameters.nc"


def training_params():
    """The training settings a member's result depends on (not how many are kept)."""
    return {k: v for k, v in config["training"].items() if k not in ("members", "keep_best", "group_members")}


def study_outputs():
    """What `snakemake` builds by default for the study's source."""
    evaluation = f"results/{STUDY}/evaluation"
    analyses = [f"results/{STUDY}/{table}".format(grid=grid) for grid in ANALYSIS_GRIDS for table in ANALYSIS_TABLES]
    if config["source"] == "fluxnet16":
        figures = [f"results/{STUDY}/figures/heldout_nse.{ext}" for ext in ("png", "pdf")]
        return [f"{evaluation}/heldout_sites.csv", f"{evaluation}/heldout_medians.csv", f"{evaluation}/metrics.csv"] + figures + analyses
    truth = [f"{evaluation}/recovery.csv", f"results/{STUDY}/scorecard.csv"] if TRUTH else []
    return [f"{evaluation}/metrics.csv"] + truth + analyses
