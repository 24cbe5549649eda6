"""Helpers shared by the rule files; the only place functions live."""

from hybridland import config as study_config

study_config.check(config)

STUDY = config["study"]


wildcard_constraints:
    study=STUDY,
    grid="|".join(config["grids"]),
    dataset="|".join(config["datasets"]),


def code(script, *modules):
    """Files a rule executes, so that editing any of them reruns it."""
    return [f"workflow/scripts/{script}.py"] + [f"src/hybridland/{m}.py" for m in modules]


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
