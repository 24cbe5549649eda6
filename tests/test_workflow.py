"""The workflow on the smoke study: it runs, its outputs hold what they promise, edits rerun the right rules."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
SMOKE = "config/studies/smoke.yaml"
# Smoke study: 5 setups on 0p25deg and 1 on 0p125deg; identifiability ensembles of 3 members
# for 2 setups (2 factorial members each, so 1 extra member each).
DOWNSTREAM_OF_DRIVER = {
    "train_setup": 6,
    "select_members": 6,
    "evaluate_setup": 6,
    "gather_metrics": 1,
    "train_extra_members": 2,
    "select_identifiability": 2,
    "identifiability": 1,
    "partition": 1,
    "pca": 1,
    "shap": 1,
    "gather_shap": 1,
    "sensitivity": 1,
    "scorecard": 1,
    "all": 1,
}
IGNORE = shutil.ignore_patterns(
    ".git", "results", ".snakemake", "__pycache__", "*.egg-info", ".pytest_cache"
)


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(workdir / "src"))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
        )
    return result


def scheduled(dry_run: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from a dry run's job stats table."""
    if "Nothing to be done" in dry_run.stdout:
        return {}
    table = dry_run.stdout.split("Job stats:")[1].split("Reasons:")[0]
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)
        if m.group(1) != "total"
    }


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """A copy of the repository in which the smoke study has run to the end."""
    workdir = tmp_path_factory.mktemp("smoke") / "repo"
    shutil.copytree(ROOT, workdir, ignore=IGNORE)
    snakemake(workdir, "--configfile", SMOKE)
    return workdir


def test_lint_is_clean():
    result = snakemake(ROOT, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


@pytest.mark.parametrize("study", sorted(p.name for p in (ROOT / "config/studies").glob("*.yaml")))
def test_dry_run_of_every_study(study):
    snakemake(ROOT, "-n", "--configfile", f"config/studies/{study}")


def test_evaluation_tables(smoke):
    import pandas as pd

    metrics = pd.read_csv(smoke / "results/smoke/evaluation/metrics.csv")
    assert list(metrics.columns) == [
        "grid",
        "setup",
        "member",
        "variable",
        "split",
        "r2_score",
        "explained_variance",
        "n",
    ]
    assert set(metrics.setup) == {"CONTROL", "PFT", "CLIM", "PFT+CLIM", "LATLON"}
    assert set(metrics.split) == {"train", "dev", "test"} and "ensemble" in set(
        metrics.member.astype(str)
    )
    recovery = pd.read_csv(smoke / "results/smoke/evaluation/recovery.csv")
    assert list(recovery.columns) == ["grid", "setup", "parameter", "pearson_r", "bias", "rmse"]
    with xr.open_dataset(smoke / "results/smoke/params/0p25deg/PFT+CLIM.nc") as params:
        assert params.LCMA.dims == ("lat", "lon") and params.LCMA.attrs["units"] == "gC m-2"
        assert "LCMA_std" in params and "Csom" in params


def test_one_job_per_member_when_members_are_not_grouped(tmp_path):
    overlay = tmp_path / "per_member.yaml"
    overlay.write_text("training:\n  group_members: false\n")
    jobs = scheduled(snakemake(ROOT, "-n", "--configfile", SMOKE, str(overlay)))
    # 6 (grid, setup) pairs x 2 members, and the third member of the 2 identifiability ensembles
    assert (
        jobs["train_member"] == 6 * 2 + 2
        and "train_setup" not in jobs
        and "train_extra_members" not in jobs
    )


def test_driver_holds_the_contract(smoke):
    for grid, shape in (("0p25deg", (8, 8)), ("0p125deg", (16, 16))):
        with xr.open_dataset(smoke / f"results/smoke/driver/{grid}.nc") as d:
            assert d.attrs["grid"] == grid and d.land_mask.shape == shape
            assert d.lat.attrs["units"] == "degrees_north" and d.t_min.attrs["units"] == "degC"
            assert d.test.dtype == bool and 0 < int(d.patch_test.sum()) < d.sizes["patch_id"]
            assert set(np.unique(d.patch.values)) == set(d.patch_id.values)
            for name in (
                "NF",
                "MAT",
                "MAP",
                "elevation",
                "canopy_height",
                "forest_age",
                "SAND",
                "t_min",
                "precip",
                "co2",
            ):
                assert np.isfinite(d[name].values).all(), name
            np.testing.assert_allclose(
                d.predictor_std.sel(predictor="MAT"), d.MAT[~d.test].std(), rtol=1e-5
            )
            pft = np.stack(
                [
                    d[p].values
                    for p in ("NF", "DBF", "EBF", "MF", "SH", "SAV", "GRA", "WET", "CRO", "NVG")
                ]
            )
            np.testing.assert_allclose(pft.sum(axis=0), 1.0, rtol=1e-5)
            assert d.lai.dims == ("cell", "time") and d.nbe.dims == ("patch_id", "time")
            assert d.sizes["time"] == 36 and float(d.delta_t[1]) == 28.0
            assert 0.0 <= float(np.nanmin(d.lai)) and float(np.nanmax(d.lai)) < 15.0


def test_every_job_has_a_log_and_a_benchmark(smoke):
    logs = list((smoke / "results/smoke/logs").rglob("*.log"))
    benchmarks = list((smoke / "results/smoke/benchmarks").rglob("*.tsv"))
    assert len(logs) == len(benchmarks) > 0
    assert "wrote" in (smoke / "results/smoke/logs/regrid/0p25deg/lai.log").read_text()


def test_editing_a_module_reruns_its_stage_and_what_follows(smoke):
    assert scheduled(snakemake(smoke, "-n", "--configfile", SMOKE)) == {}
    module = smoke / "src/hybridland/data/regrid.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    jobs = scheduled(snakemake(smoke, "-n", "--configfile", SMOKE))
    assert jobs == {"regrid": 28, "assemble_driver": 2} | DOWNSTREAM_OF_DRIVER


def test_changing_a_stage_config_reruns_that_stage_only(smoke):
    changed = smoke / "changed.yaml"
    changed.write_text("driver:\n  test_fraction: 0.3\n")
    snakemake(smoke, "--configfile", SMOKE)  # bring everything up to date first
    jobs = scheduled(snakemake(smoke, "-n", "--configfile", SMOKE, str(changed)))
    assert jobs == {"assemble_driver": 2} | DOWNSTREAM_OF_DRIVER
    changed.write_text("training:\n  keep_best: 2\n")
    jobs = scheduled(snakemake(smoke, "-n", "--configfile", SMOKE, str(changed)))
    # the dedicated identifiability ensembles keep their own number of members
    assert jobs == {
        "select_members": 6,
        "evaluate_setup": 6,
        "gather_metrics": 1,
        "partition": 1,
        "pca": 1,
        "shap": 1,
        "gather_shap": 1,
        "scorecard": 1,
        "all": 1,
    }
    changed.write_text("shap:\n  nsamples: 40\n")
    jobs = scheduled(snakemake(smoke, "-n", "--configfile", SMOKE, str(changed)))
    assert jobs == {"shap": 1, "gather_shap": 1, "scorecard": 1, "all": 1}


def test_analysis_tables(smoke):
    import pandas as pd

    results = smoke / "results/smoke"
    partition = pd.read_csv(results / "partition/0p25deg/global.csv")
    assert list(partition.columns) == ["variable", "metric", "component", "value"]
    assert set(partition.metric) == {"r2_score", "explained_variance"}
    assert set(partition.component) == {"PFT", "CLIM", "baseline", "full"}
    summary = pd.read_csv(results / "identifiability/0p25deg/summary.csv")
    assert list(summary.columns) == ["setup", "parameter", "median_cv", "identifiable"]
    assert list(dict.fromkeys(summary.setup)) == ["PFT+CLIM", "CLIM"] and len(summary) == 80
    ratio = pd.read_csv(results / "pca/0p25deg/explained_variance.csv")
    assert list(ratio.columns) == ["component", "ratio"] and ratio.ratio.sum() == pytest.approx(1.0)
    importance = pd.read_csv(results / "shap/0p25deg/importance.csv")
    assert list(importance.columns) == ["setup", "parameter", "feature", "share"]
    assert set(importance.setup) == {"CLIM"} and set(importance.feature) == {
        "MAT",
        "MAP",
        "elevation",
    }
    card = pd.read_csv(results / "scorecard.csv")
    assert list(card.columns) == ["check", "value", "threshold", "passed"] and len(card) > 0


REPORT_FIGURES = [
    "partition/0p25deg/bars.png",
    "partition/0p25deg/maps.png",
    "identifiability/0p25deg/median_cv.png",
    "pca/0p25deg/biplot.png",
    "pca/0p25deg/score_maps.png",
    "shap/0p25deg/CLIM/dependence.png",
    "shap/0p25deg/group_shares.png",
    "scorecard.png",
]
REPORT_TABLES = [
    "evaluation/metrics.csv",
    "evaluation/recovery.csv",
    "partition/0p25deg/global.csv",
    "scorecard.csv",
]


def test_report_embeds_every_figure_and_opens_without_errors_in_chromium(smoke):
    from browser import open_page, require_chromium

    report = smoke / "results/smoke/report.html"
    snakemake(smoke, "--configfile", SMOKE, "--report", str(report.relative_to(smoke)))
    html = report.read_text()
    for name in REPORT_FIGURES + REPORT_TABLES:
        assert f'"results/smoke/{name}": {{"name": ' in html, name
    for name in REPORT_FIGURES:
        assert f"filename={Path(name).name};base64,iVBORw0KGgo" in html, name  # an embedded PNG
    require_chromium()
    page = open_page(report)
    assert page.errors == []
    for category in (
        "Hierarchical partitioning",
        "Identifiability",
        "Kernel SHAP",
        "PCA",
        "Skill",
        "Twin scorecard",
    ):
        assert category in page.text


def test_the_browser_check_sees_console_errors_and_exceptions(tmp_path):
    from browser import open_page, require_chromium

    require_chromium()
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><body>hello<script>console.error('boom'); undefinedFunction();</script></body></html>"
    )
    report = open_page(page, settle_s=2.0)
    assert report.text == "hello"
    assert any("boom" in e for e in report.errors) and any(
        "undefinedFunction" in e for e in report.errors
    )
