"""Rules of a study configuration that span several keys (the JSON schema checks the rest),
and a strict reading of the config files."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hybridland.data.grids import STANDARD_RESOLUTIONS, Grid
from hybridland.model import parameters
from hybridland.training.setups import dynamic_setup, factorial, setup_name

# Datasets the driver is assembled from, per source.
REQUIRED_DATASETS = {
    "twin": ("landcover", "soil", "elevation", "canopy_height", "forest_age", "forcing"),
    "differland_global": (),  # one bundle holds everything
    "fluxnet16": (),  # packaged with hybridland, no regridding
}
SITE_GRID = "sites"  # the grid of a site study: cells are sites, no lat/lon lattice


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


class _DuplicateKey(Exception):
    def __init__(self, key: object, line: int, first: int) -> None:
        super().__init__(key, line, first)
        self.key, self.line, self.first = key, line, first


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        lines: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in lines:
                raise _DuplicateKey(key, line, lines[key])
            lines[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path | str) -> dict[str, Any]:
    """A config file read strictly: a duplicate key, bad YAML or a missing file is a
    ConfigError naming the file (and the line where known)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist; check the path given to --configfile"
        )
    loader = _StrictLoader(path.read_text(encoding="utf-8"))
    try:
        content = loader.get_single_data()
    except _DuplicateKey as duplicate:
        raise ConfigError(
            f"{path}, line {duplicate.line}: key '{duplicate.key}' is given twice in one section "
            f"(first on line {duplicate.first}), and YAML would silently keep the last; keep one"
        ) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"{path}{line}: not valid YAML ({error.problem or error.context}); correct it"
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error}); correct it") from None
    finally:
        loader.dispose()
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of keys to values")
    return content


def check_files(paths: Iterable[Path | str]) -> None:
    """Read every config file strictly (the base config and each --configfile overlay)."""
    for path in paths:
        load_yaml(path)


def _whole_multiple(value: float, step: float) -> bool:
    ratio = value / step
    return math.isclose(ratio, round(ratio), abs_tol=1e-9) and round(ratio) >= 1


def check(config: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the first key whose value is impossible."""
    region = config["region"]
    if not region["west"] < region["east"]:
        raise ConfigError(
            f"region.west ({region['west']}) must be less than region.east ({region['east']})"
        )
    if not region["south"] < region["north"]:
        raise ConfigError(
            f"region.south ({region['south']}) must be less than region.north ({region['north']})"
        )
    _check_region_cells(config)
    period = config["period"]
    if period["first_year"] > period["last_year"]:
        raise ConfigError(
            f"period.first_year ({period['first_year']}) is after period.last_year "
            f"({period['last_year']})"
        )
    if config["source"] == "fluxnet16":
        _check_fluxnet(config)
    elif SITE_GRID in config["grids"]:
        raise ConfigError(
            f"grids lists '{SITE_GRID}', which only a fluxnet16 study has (source is "
            f"{config['source']!r})"
        )
    for axis, size in zip(("lat", "lon"), config["driver"]["patch_deg"]):
        for grid in (g for g in config["grids"] if g != SITE_GRID):
            step = STANDARD_RESOLUTIONS[grid]
            if not _whole_multiple(size, step):
                raise ConfigError(
                    f"driver.patch_deg ({axis} {size}) is not a whole number of {grid} cells "
                    f"({step} deg)"
                )
    if config["source"] == "twin":
        resolution = config.get("twin", {}).get("truth_resolution", 0.05)
        if not _whole_multiple(0.1, resolution):
            raise ConfigError(f"twin.truth_resolution ({resolution}) must divide 0.1 deg")
    if config["source"] == "twin":
        _check_patches(config)
    observations = config["driver"].get("observations", "products")
    if observations == "grid_truth" and (
        config["source"] != "twin" or "truth_parameters" not in config["datasets"]
    ):
        lacking = "" if "truth_parameters" in config["datasets"] else ", datasets lack it"
        raise ConfigError(
            "driver.observations: grid_truth makes the observations from the twin's "
            f"truth_parameters (source is {config['source']!r}{lacking})"
        )
    if config["source"] == "differland_global":
        _check_bundle(config)
    _check_setups(config)
    _check_baselines(config)
    _check_analyses(config)
    missing = [d for d in REQUIRED_DATASETS[config["source"]] if d not in config["datasets"]]
    if missing:
        raise ConfigError(
            f"datasets lacks {missing}, which the driver of a {config['source']} study needs"
        )


def _gridded(config: Mapping[str, Any]) -> list[str]:
    return [g for g in config["grids"] if g != SITE_GRID]


def _check_region_cells(config: Mapping[str, Any]) -> None:
    """Every grid, snapped outward from the region, needs 2 cells in each direction
    (regridding fails on a grid one cell wide)."""
    region = config["region"]
    for grid in _gridded(config):
        cells = Grid.from_config({"name": grid, "box": region})
        for (low, high), count in (
            (("west", "east"), len(cells.lon)),
            (("south", "north"), len(cells.lat)),
        ):
            if count < 2:
                raise ConfigError(
                    f"region.{low} ({region[low]}) to region.{high} ({region[high]}) covers "
                    f"{count} {grid} cell ({STANDARD_RESOLUTIONS[grid]} deg); at least 2 are "
                    "needed in each direction: widen the region"
                )


def _check_patches(config: Mapping[str, Any]) -> None:
    """After the test draw and a member's dev draw, a patch must be left to train on."""
    from hybridland.data.driver import patch_numbers  # imported here: it pulls in xarray

    patch_deg = tuple(float(v) for v in config["driver"]["patch_deg"])
    test_fraction = config["driver"]["test_fraction"]
    dev_fraction = config["training"]["dev_fraction"]
    for grid in _gridded(config):
        cells = Grid.from_config({"name": grid, "box": config["region"]})
        patches = np.unique(patch_numbers(cells, patch_deg)).size
        test = max(1, round(test_fraction * patches))
        dev = max(1, round(dev_fraction * (patches - test)))
        if patches - test - dev < 1:
            raise ConfigError(
                f"region holds {patches} patch{'es' if patches != 1 else ''} of "
                f"driver.patch_deg {list(patch_deg)} on {grid}; "
                f"driver.test_fraction takes {test} and training.dev_fraction {dev} of them, "
                "which leaves none to train on; enlarge the region or lower driver.patch_deg"
            )


def _check_fluxnet(config: Mapping[str, Any]) -> None:
    if config["grids"] != [SITE_GRID]:
        raise ConfigError(
            f"grids ({config['grids']}) must be ['{SITE_GRID}'] "
            "for source fluxnet16: its cells are sites"
        )
    if "fluxnet" not in config:
        raise ConfigError("the fluxnet section is required for source fluxnet16")
    extra = sorted(set(config["setups"]["groups"]) - {"PFT", "CLIM"})
    if extra:
        raise ConfigError(
            f"setups.groups lists {extra}; the FLUXNET16 site table only has PFT and CLIM"
        )
    if "dynamic" in config["fluxnet"]:
        _check_dynamic(config)


def _check_dynamic(config: Mapping[str, Any]) -> None:
    section = config["fluxnet"]["dynamic"]
    trained = setups_per_grid(config)[SITE_GRID]
    if section["static_setup"] not in trained:
        raise ConfigError(
            f"fluxnet.dynamic.static_setup {section['static_setup']!r} is not a setup the study "
            f"trains: {trained}"
        )
    allowed = set(parameters.NAMES) - set(parameters.INITIAL_POOLS)
    bad = [n for n in section["parameters"] if n not in allowed]
    if bad:
        raise ConfigError(
            f"fluxnet.dynamic.parameters lists {bad}; allowed: parameters of spec 4.1 other "
            "than the initial pools"
        )
    if section["keep_best"] > section["members"]:
        raise ConfigError(
            f"fluxnet.dynamic.keep_best ({section['keep_best']}) exceeds "
            f"fluxnet.dynamic.members ({section['members']})"
        )


def dynamic_models(config: Mapping[str, Any]) -> list[str]:
    """Setup names of the dynamic hybrids a FLUXNET16 study builds (none without the section)."""
    section = config.get("fluxnet", {}).get("dynamic")
    if config["source"] != "fluxnet16" or not section:
        return []
    return [dynamic_setup(kind, section["static_setup"]) for kind in section["models"]]


def setups_per_grid(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """Grid -> the setups trained on it, in config order (a site study trains every setup; per_grid
    is ignored)."""
    every = factorial(config["setups"]["groups"]) + list(config["setups"]["extra"])
    if config["source"] == "fluxnet16":
        return {SITE_GRID: every}
    per_grid = config["setups"]["per_grid"]
    return {
        g: (every if per_grid.get(g, "all") == "all" else list(per_grid[g]))
        for g in config["grids"]
    }


def _check_setups(config: Mapping[str, Any]) -> None:
    training = config["training"]
    if training["keep_best"] > training["members"]:
        raise ConfigError(
            f"training.keep_best ({training['keep_best']}) exceeds training.members "
            f"({training['members']})"
        )
    # Entries for grids the study does not use are ignored: an overlay cannot delete the
    # base config's (Snakemake merges config files key by key); the schema checks the names.
    every = set(factorial(config["setups"]["groups"])) | set(config["setups"]["extra"])
    for grid, names in setups_per_grid(config).items():
        bad = sorted(set(names) - every)
        if bad:
            raise ConfigError(
                f"setups.per_grid.{grid} lists {bad}, which are not setups of the groups "
                f"{config['setups']['groups']} (names are canonical, e.g. PFT+CLIM+SOIL+AGE)"
            )


def _check_baselines(config: Mapping[str, Any]) -> None:
    """The baselines' grids exist and ConvLSTM+DALEC has the full setup's parameters to read."""
    section = config["baselines"]
    models = list(section["models"])
    for key in ("epochs", "learning_rate"):
        missing = [m for m in models if m not in section[key]]
        if missing:
            raise ConfigError(f"baselines.{key} lacks an entry for {missing}")
    if config["source"] == "fluxnet16":
        if set(models) - {"LSTM"}:
            raise ConfigError(
                f"baselines.models lists {sorted(set(models) - {'LSTM'})}, which need a grid; "
                "a fluxnet16 study's cells are sites (LSTM only)"
            )
        if models and section["lstm_grid"] != SITE_GRID:
            raise ConfigError(f"baselines.lstm_grid must be '{SITE_GRID}' for source fluxnet16")
        return
    for key, uses in (("lstm_grid", ["LSTM"]), ("conv_grid", ["ConvLSTM", "ConvLSTM+DALEC"])):
        if set(uses) & set(models) and section[key] not in config["grids"]:
            raise ConfigError(
                f"baselines.{key} ({section[key]}) is not one of grids {config['grids']}"
            )
    if "ConvLSTM+DALEC" in models:
        full = setup_name(config["setups"]["groups"])
        if full not in setups_per_grid(config)[section["conv_grid"]]:
            raise ConfigError(
                f"baselines.models lists ConvLSTM+DALEC, which reads the parameters of the full "
                f"setup {full} on baselines.conv_grid ({section['conv_grid']}); add it to "
                f"setups.per_grid.{section['conv_grid']}"
            )


def _check_analyses(config: Mapping[str, Any]) -> None:
    identifiability = config["identifiability"]
    if identifiability["keep_best"] > identifiability["members"]:
        raise ConfigError(
            f"identifiability.keep_best ({identifiability['keep_best']}) exceeds "
            f"identifiability.members ({identifiability['members']})"
        )
    from hybridland.model.parameters import check_quantities

    try:
        check_quantities(["canopy_efficiency", *config["shap"]["parameters"]])
    except ValueError as error:
        raise ConfigError(f"shap.parameters: {error}") from None
    trained, grids = setups_per_grid(config), config["analyses"]["grids"]
    for grid in grids:
        if grid not in trained:
            raise ConfigError(
                f"analyses.grids names {grid!r}, which is not in grids {config['grids']}"
            )
        absent = [s for s in factorial(config["setups"]["groups"]) if s not in trained[grid]]
        if absent:
            raise ConfigError(
                f"analyses.grids names {grid!r}, but setups.per_grid does not train {absent} "
                "there; the partitioning needs every setup of the factorial"
            )
        named = {
            "identifiability.setups": identifiability["setups"],
            "shap.setups": config["shap"]["setups"],
            "pca.setup": [config["pca"]["setup"]],
        }
        for key, names in named.items():
            bad = [s for s in names if s not in trained[grid]]
            if bad:
                raise ConfigError(
                    f"{key} lists {bad}, which setups.per_grid does not train on {grid}"
                )


def _check_bundle(config: Mapping[str, Any]) -> None:
    from hybridland.data import bundle

    period = config["period"]
    if period["first_year"] < bundle.FIRST_YEAR or period["last_year"] > bundle.LAST_YEAR:
        raise ConfigError(
            f"period ({period['first_year']}-{period['last_year']}) leaves the years of the "
            f"differland_global bundle ({bundle.FIRST_YEAR}-{bundle.LAST_YEAR})"
        )
    try:
        bundle.Layout.from_config(config.get("bundle"))
    except bundle.BundleError as error:
        raise ConfigError(str(error)) from None
