"""The workflow on the smoke study: it runs, its outputs hold what they promise, edits rerun the
right rules."""

from __future__ import annotations

import base64
import collections
import html
import json
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
    "train_grid_0p25deg": 1,  # training.program: grid (one job per grid)
    "train_grid_0p125deg": 1,
    "select_members": 6,
    "evaluate_setup": 6,
    "gather_metrics": 1,
    "baseline_lstm": 1,
    "baseline_convlstm": 1,
    "baseline_convlstm_dalec": 1,
    "train_extra_members": 2,
    "select_identifiability": 2,
    "identifiability": 1,
    "partition": 1,
    "pca": 1,
    "shap": 1,
    "gather_shap": 1,
    "sensitivity": 1,
    "scorecard": 1,
    "comparison": 1,
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
        "metric",
        "r2_score",
        "explained_variance",
        "n",
    ]
    assert set(metrics.metric) == {"r2_score_pooled", "nse_cell_median"}
    cell = metrics[metrics.metric == "nse_cell_median"]
    assert set(cell.split) == {"test"} and set(cell.variable) <= {"lai", "sif", "et", "biomass"}
    baselines = {"LSTM", "ConvLSTM", "ConvLSTM+DALEC"}
    assert set(metrics.setup) == {"CONTROL", "PFT", "CLIM", "PFT+CLIM", "LATLON"} | baselines
    # the pure-ML baselines see lai, sif and et only
    assert set(metrics[metrics.setup.isin(baselines)].variable) == {"lai", "sif", "et"}
    assert set(metrics.split) == {"train", "dev", "test"} and "ensemble" in set(
        metrics.member.astype(str)
    )
    recovery = pd.read_csv(smoke / "results/smoke/evaluation/recovery.csv")
    assert list(recovery.columns) == ["grid", "setup", "parameter", "pearson_r", "bias", "rmse"]
    with xr.open_dataset(smoke / "results/smoke/params/0p25deg/PFT+CLIM.nc") as params:
        assert params.LCMA.dims == ("lat", "lon") and params.LCMA.attrs["units"] == "gC m-2"
        assert "LCMA_std" in params and "Csom" in params


def test_training_program_sets_the_jobs_not_the_files(tmp_path):
    member_files = {}
    for program in ("grid", "setup", "member"):
        overlay = tmp_path / f"{program}.yaml"
        overlay.write_text(f"training:\n  program: {program}\n")
        summary = snakemake(ROOT, "--summary", "--configfile", SMOKE, str(overlay)).stdout
        rows = [line.split("\t") for line in summary.splitlines()]
        member_files[program] = {
            row[0]: row[2]
            for row in rows
            if re.search(r"/member\d\d/(weights.npz|member.json)$", row[0])
        }
    # 6 (grid, setup) pairs x 2 members, and the third member of the 2 identifiability ensembles
    assert len(member_files["grid"]) == 2 * (6 * 2 + 2)
    assert (
        member_files["grid"].keys() == member_files["setup"].keys() == member_files["member"].keys()
    )
    jobs = {p: collections.Counter(files.values()) for p, files in member_files.items()}
    assert jobs["grid"] == {
        "train_grid_0p25deg": 2 * 5 * 2,
        "train_grid_0p125deg": 2 * 2,
        "train_extra_members": 2 * 2,
    }
    assert jobs["setup"] == {"train_setup": 2 * 6 * 2, "train_extra_members": 2 * 2}
    assert jobs["member"] == {"train_member": 2 * (6 * 2 + 2)}


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
        "baseline_convlstm_dalec": 1,  # reads the full setup's parameters
        "gather_metrics": 1,
        "partition": 1,
        "pca": 1,
        "shap": 1,
        "gather_shap": 1,
        "scorecard": 1,
        "comparison": 1,
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
    summary = pd.read_csv(smoke / "results/smoke/identifiability/0p25deg/summary.csv")
    assert list(summary.columns) == [
        "setup",
        "parameter",
        "median_cv",
        "identifiable",
        "criterion",
        "value",
        "threshold",
    ]
    assert list(dict.fromkeys(summary.setup)) == ["PFT+CLIM", "CLIM"] and len(summary) == 240
    assert set(summary.criterion) == {"cv_published", "fisher", "combined"}
    both = summary.pivot(index=["setup", "parameter"], columns="criterion", values="identifiable")
    assert (both["combined"] == (both["cv_published"] & both["fisher"])).all()
    assert not both.loc[("CLIM", "IWUE"), "fisher"]  # never read by DALEC993
    pairs = pd.read_csv(results / "identifiability/0p25deg/equifinal_pairs.csv")
    assert list(pairs.columns) == ["setup", "parameter_a", "parameter_b", "value"]
    ratio = pd.read_csv(results / "pca/0p25deg/explained_variance.csv")
    assert list(ratio.columns) == ["component", "ratio"] and ratio.ratio.sum() == pytest.approx(1.0)
    importance = pd.read_csv(results / "shap/0p25deg/importance.csv")
    assert list(importance.columns) == ["setup", "parameter", "feature", "share"]
    assert set(importance.setup) == {"CLIM"} and set(importance.feature) == {
        "MAT",
        "MAP",
        "elevation",
    }


# The kind of a scorecard check (its third part) -> its threshold's name and whether the value
# must be at most the threshold (else at least), as hybridland.analysis.scorecard documents.
SCORECARD_KINDS = {
    "rank": ("SHAP_RANK_MIN", False),
    "no_influence": ("NO_INFLUENCE_SHARE_MAX", True),
    "agreement": ("AGREEMENT_MIN", False),
    "identifiable_but_invisible": ("INVISIBLE_IDENTIFIABLE_MAX", True),
    "congruence": ("CONGRUENCE_MIN", False),
    "ratio_gap": ("RATIO_GAP_MAX", True),
    "recovery_r": ("RECOVERY_R_MIN", False),
    "equifinal_flagged": ("EQUIFINAL_FLAGGED_MIN", False),
    "full_minus_best_subset": ("FULL_GAP_MIN", False),
    "test_r2": ("LAI_R2_MIN", False),
    "kept_loss_ratio": ("KEPT_LOSS_RATIO_MAX", True),
}


def test_scorecard_passes_a_check_exactly_when_its_value_meets_the_threshold(smoke):
    import pandas as pd

    from hybridland.analysis import scorecard

    card = pd.read_csv(smoke / "results/smoke/scorecard.csv")
    assert list(card.columns) == ["check", "value", "threshold", "passed"]
    assert card.passed.dtype == bool and card.check.is_unique
    kind = card.check.str.split("/").str[2]
    ratio = kind == "kept_loss_ratio"  # a loss ratio, at least 1; every other value is a share,
    assert np.isfinite(card.value).all() and (card.value[ratio] >= 1.0).all()  # a correlation
    assert card.value[~ratio].between(-2.0, 1.0).all()  # or an R2 (gap)
    assert set(kind) <= set(SCORECARD_KINDS)
    threshold = kind.map(lambda k: getattr(scorecard, SCORECARD_KINDS[k][0]))
    at_most = kind.map(lambda k: SCORECARD_KINDS[k][1]).astype(bool)
    assert (card.threshold == threshold).all()
    meets = np.where(at_most, card.value <= card.threshold, card.value >= card.threshold)
    assert (card.passed == meets).all()
    # Smoke: an agreement check per identifiability ensemble, two per principal component, one
    # per ranked CLIM quantity, the training checks; the truth record and the verdict decide
    # which no-influence, invisibility and recovery checks apply (none outside those kinds).
    expected = (
        {f"0p25deg/identifiability/agreement/{setup}" for setup in ("PFT+CLIM", "CLIM")}
        | {f"0p25deg/pca/{k}/PC{n}" for k in ("congruence", "ratio_gap") for n in (1, 2, 3)}
        | {f"0p25deg/training/full_minus_best_subset/{v}" for v in ("lai", "sif", "et")}
        | {"0p25deg/training/test_r2/PFT+CLIM/lai", "0p25deg/training/kept_loss_ratio"}
    )
    ranks = {c for c in card.check if c.startswith("0p25deg/shap/rank/CLIM/")}
    assert len(ranks) > 0 and expected <= set(card.check)
    # SHAP is scored only on what the CLIM setup's combined verdict calls identifiable
    summary = pd.read_csv(smoke / "results/smoke/identifiability/0p25deg/summary.csv")
    verdict = summary[(summary.setup == "CLIM") & (summary.criterion == "combined")]
    identifiable = set(verdict.parameter[verdict.identifiable.astype(bool)])
    assert {c.rsplit("/", 1)[1] for c in ranks} <= identifiable
    applies_by_record = (
        "0p25deg/identifiability/identifiable_but_invisible/",
        "0p25deg/identifiability/recovery_r/",
        "0p25deg/identifiability/equifinal_flagged/",
        "0p25deg/shap/no_influence/",
    )
    rest = set(card.check) - expected - ranks
    assert all(c.startswith(applies_by_record) for c in rest), rest


# Every figure of the smoke study -> its caption in the report.
REPORT_FIGURES = {
    "partition/0p25deg/bars.png": "partition_bars.rst",
    "partition/0p25deg/maps.png": "partition_maps.rst",
    "identifiability/0p25deg/median_cv.png": "identifiability_bars.rst",
    "identifiability/0p25deg/fisher.png": "identifiability_fisher.rst",
    "pca/0p25deg/biplot.png": "pca_biplot.rst",
    "pca/0p25deg/score_maps.png": "pca_maps.rst",
    "shap/0p25deg/CLIM/dependence.png": "shap_dependence.rst",
    "shap/0p25deg/group_shares.png": "shap_groups.rst",
    "scorecard.png": "scorecard.rst",
    "evaluation/comparison.png": "comparison.rst",
}
# Figure sizes in inches that the smoke study fixes: one panel per metric (r2_score,
# explained_variance), per mapped variable (lai, sif, et), per principal component pair or
# component (3), per SHAP setup (CLIM); the scorecard's height grows with its rows, the
# comparison's width with its targets.
FIGURE_INCHES = {
    "partition/0p25deg/bars.png": (2 * 5.0, 3.6),
    "partition/0p25deg/maps.png": (2 * 4.2, 3 * 3.4),
    "pca/0p25deg/biplot.png": (3 * 4.4, 4.4),
    "pca/0p25deg/score_maps.png": (3 * 4.2, 3.4),
    "shap/0p25deg/group_shares.png": (6.0, 3.2),
}
REPORT_TABLES = [
    "evaluation/metrics.csv",
    "evaluation/recovery.csv",
    "evaluation/0p25deg/truth_skill.csv",
    "partition/0p25deg/global.csv",
    "scorecard.csv",
    "evaluation/comparison.csv",
]


def test_figures_are_images_of_their_size_with_something_drawn(smoke):
    import pandas as pd
    from figures import assert_figure

    results = smoke / "results/smoke"
    assert sorted(str(p.relative_to(results)) for p in results.rglob("*.png")) == sorted(
        REPORT_FIGURES
    )
    rows = len(pd.read_csv(results / "scorecard.csv"))
    targets = pd.read_csv(results / "evaluation/comparison.csv").variable.nunique()
    inches = FIGURE_INCHES | {
        "scorecard.png": (8.0, max(3.0, 0.22 * rows)),
        "evaluation/comparison.png": (3.2 * targets, 3.6),
    }
    for name in REPORT_FIGURES:
        assert_figure((results / name).with_suffix(""), inches.get(name))


def report_results(page_source: str) -> dict[str, dict]:
    """The results a Snakemake report embeds: path -> name, caption (HTML), data URI, ..."""
    found = re.search(r"var results = (\{.*?\});\s*</script>", page_source, re.DOTALL)
    assert found is not None, "no results in the report"
    return json.loads(found.group(1))


def plain_text(markup: str) -> str:
    """Text of HTML or reStructuredText without tags, with single spaces."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


@pytest.fixture(scope="module")
def report(smoke) -> Path:
    """The smoke study's self-contained HTML report."""
    path = smoke / "results/smoke/report.html"
    snakemake(smoke, "--configfile", SMOKE, "--report", str(path.relative_to(smoke)))
    return path


def test_report_embeds_every_figure_with_its_caption(smoke, report):
    results = report_results(report.read_text())
    for name in REPORT_TABLES:
        assert f"results/smoke/{name}" in results, name
    for name, caption in REPORT_FIGURES.items():
        entry = results[f"results/smoke/{name}"]
        assert entry["mime_type"] == "image/png", name
        header, data = entry["data_uri"].split(";base64,")
        assert header.startswith("data:image/png;") and header.endswith(
            f"filename={Path(name).name}"
        )
        assert base64.b64decode(data) == (smoke / "results/smoke" / name).read_bytes(), name
        text = plain_text((ROOT / "workflow/report" / caption).read_text())
        assert text in plain_text(entry["caption"]), name


def test_report_opens_without_errors_in_chromium(report):
    from browser import open_page, require_chromium

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
        "<html><body>hello<script>console.error('boom'); undefinedFunction();</script>"
        "</body></html>"
    )
    report = open_page(page, settle_s=2.0)
    assert report.text == "hello"
    assert any("boom" in e for e in report.errors) and any(
        "undefinedFunction" in e for e in report.errors
    )
