"""The study configuration: the schema and the cross-key rules name the bad key."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from hybridland import config as study_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


def default() -> dict:
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def overlay(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = overlay(out[key], value) if isinstance(value, dict) and key in out else value
    return out


@pytest.mark.parametrize("study", sorted(p.name for p in (ROOT / "config/studies").glob("*.yaml")))
def test_every_shipped_config_is_valid(study):
    config = overlay(default(), yaml.safe_load((ROOT / "config/studies" / study).read_text()))
    validate(config, SCHEMA)
    study_config.check(config)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"driver": {"tets_fraction": 0.1}},
            "Additional properties are not allowed ('tets_fraction' was unexpected)",
        ),
        ({"seed": "seven"}, "'seven' is not of type 'integer'"),
        ({"driver": {"test_fraction": 1.5}}, "1.5 is greater than or equal to the maximum of 1"),
        ({"grids": ["0p1deg"]}, "'0p1deg' is not one of ['0p25deg', '0p125deg', 'sites']"),
        ({"training": {"program": "all"}}, "'all' is not one of ['grid', 'setup', 'member']"),
        (
            {"driver": {"observations": "truth"}},
            "'truth' is not one of ['products', 'grid_truth']",
        ),
    ],
)
def test_schema_rejects_with_the_key(change, message):
    with pytest.raises(WorkflowError, match=re.escape(message)):
        validate(overlay(default(), change), SCHEMA)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"driver": {"patch_deg": [1.0, 0.3]}},
            "driver.patch_deg (lon 0.3) is not a whole number of 0p25deg cells (0.25 deg)",
        ),
        (
            {"driver": {"patch_deg": [0.125, 1.0]}},
            "driver.patch_deg (lat 0.125) is not a whole number of 0p25deg cells (0.25 deg)",
        ),
        (
            {"region": {"west": -100.0, "east": -110.0}},
            "region.west (-100.0) must be less than region.east (-110.0)",
        ),
        (
            {"period": {"first_year": 2015, "last_year": 2012}},
            "period.first_year (2015) is after period.last_year (2012)",
        ),
        ({"twin": {"truth_resolution": 0.03}}, "twin.truth_resolution (0.03) must divide 0.1 deg"),
        (
            {"source": "differland_global", "driver": {"observations": "grid_truth"}},
            (
                "driver.observations: grid_truth makes the observations from the twin's "
                "truth_parameters (source is 'differland_global')"
            ),
        ),
        (
            {"baselines": {"conv_grid": "sites"}},
            "baselines.conv_grid (sites) is not one of grids ['0p25deg', '0p125deg']",
        ),
        (
            {"setups": {"per_grid": {"0p125deg": ["PFT"]}}},
            "the full setup PFT+CLIM+SOIL+AGE on baselines.conv_grid (0p125deg); add it to "
            + "setups.per_grid.0p125deg",
        ),
    ],
)
def test_cross_key_rules_name_the_key(change, message):
    with pytest.raises(study_config.ConfigError, match=re.escape(message)):
        study_config.check(overlay(default(), change))


def test_bad_config_stops_snakemake_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("driver:\n  patch_deg: [1.0, 0.3]\n")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert (
        "driver.patch_deg (lon 0.3) is not a whole number of 0p25deg cells"
        in result.stdout + result.stderr
    )
    assert "rule synthesize_twin" not in result.stdout


def test_duplicate_key_in_an_overlay_stops_snakemake_before_any_job(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("training:\n  epochs: 5\n  epochs: 50\n")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(overlay)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert (
        f"{overlay}, line 3: key 'epochs' is given twice in one section (first on line 2), "
        "and YAML would silently keep the last; keep one"
    ) in result.stdout + result.stderr
    assert "rule synthesize_twin" not in result.stdout


def test_a_site_study_runs_the_lstm_baseline_only():
    sites = overlay(default(), yaml.safe_load((ROOT / "config/studies/fluxnet16.yaml").read_text()))
    study_config.check(sites)
    wrong = overlay(sites, {"baselines": {"models": ["LSTM", "ConvLSTM"]}})
    with pytest.raises(study_config.ConfigError, match=re.escape("lists ['ConvLSTM'], which need")):
        study_config.check(wrong)
