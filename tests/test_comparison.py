"""The model comparison: which models it shows, the two scores per target, its figure."""

from __future__ import annotations

import pandas as pd
import pytest
from figures import assert_figure

from hybridland.analysis import comparison

FULL = "PFT+CLIM+SOIL+AGE"
METRIC_COLUMNS = ["grid", "setup", "member", "variable", "split", "metric", "r2_score"]


def test_models_fall_into_their_kinds():
    kinds = {
        m: comparison.model_kind(m)
        for m in ("CONTROL", FULL, "PFT", "LSTM", "ConvLSTM", "ConvLSTM+DALEC", "PFT+CLIM+dyn")
    } | {m: comparison.model_kind(m) for m in ("beta-nn", "gppet-nn", "per_site")}
    assert kinds == {
        "CONTROL": "control",
        FULL: "static hybrid",
        "PFT": "static hybrid",
        "LSTM": "pure ML",
        "ConvLSTM": "pure ML",
        "ConvLSTM+DALEC": "physics-encoded ML",
        "PFT+CLIM+dyn": "dynamic hybrid",
        "beta-nn": "dynamic hybrid",
        "gppet-nn": "dynamic hybrid",
        "per_site": "per-site calibration",
    }
    # Subsets of the factorial are left out; the rest in kind order.
    shown = comparison.compared_models(["LSTM", "PFT", FULL, "CONTROL", "beta-nn"], FULL)
    assert shown == ["CONTROL", FULL, "beta-nn", "LSTM"]


def gridded_metrics() -> pd.DataFrame:
    rows = []
    scores = {("0p25deg", FULL): 0.9, ("0p25deg", "PFT"): 0.8, ("0p25deg", "CONTROL"): 0.1}
    scores |= {("0p25deg", "LSTM"): 0.7, ("0p125deg", "ConvLSTM"): 0.75}
    for (grid, setup), value in scores.items():
        for variable in ("lai", "et"):
            rows.append((grid, setup, "ensemble", variable, "test", "r2_score_pooled", value))
            rows.append((grid, setup, "ensemble", variable, "test", "nse_cell_median", value / 2))
            rows.append((grid, setup, "ensemble", variable, "train", "r2_score_pooled", 1.0))
            rows.append((grid, setup, "0", variable, "test", "r2_score_pooled", -5.0))
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def test_the_gridded_table_pairs_pooled_and_cell_median_scores_of_the_test_split():
    table = comparison.gridded_table(gridded_metrics(), FULL)
    assert list(table.columns) == list(comparison.COLUMNS)
    assert set(table.model) == {FULL, "CONTROL", "LSTM", "ConvLSTM"}  # PFT: a subset
    row = table.set_index(["model", "variable"]).loc[("ConvLSTM", "et")]
    assert (row.grid, row.scheme, row.kind) == ("0p125deg", "test_patches", "pure ML")
    assert (row.r2_score_pooled, row.nse_median) == pytest.approx((0.75, 0.375))


def test_the_sites_table_takes_each_schemes_median_and_pools_one_scheme():
    medians = pd.DataFrame(
        {
            "scheme": ["leave_site_out", "leave_cluster_out", "per_site_calibration"] * 2,
            "setup": ["PFT+CLIM"] * 2 + ["per_site"] + ["LSTM"] * 2 + ["beta-nn"],
            "variable": "et_ec",
            "median_nse": [0.6, 0.5, 0.8, 0.4, 0.3, 0.85],
        }
    )
    metrics = pd.DataFrame(
        [
            ("sites", s, "ensemble", "et_ec", "test", "r2_score_pooled", v)
            for s, v in (("PFT+CLIM", 0.55), ("LSTM", 0.35))
        ],
        columns=METRIC_COLUMNS,
    )
    table = comparison.sites_table(metrics, medians, "PFT+CLIM").set_index(["scheme", "model"])
    assert table.loc[("leave_site_out", "LSTM"), "r2_score_pooled"] == pytest.approx(0.35)
    assert pd.isna(table.loc[("leave_cluster_out", "LSTM"), "r2_score_pooled"])
    assert table.loc[("per_site_calibration", "beta-nn"), "nse_median"] == pytest.approx(0.85)
    assert table.loc[("per_site_calibration", "per_site"), "kind"] == "per-site calibration"


def test_comparison_files_write_the_table_and_a_panel_per_target(tmp_path):
    metrics = tmp_path / "metrics.csv"
    gridded_metrics().to_csv(metrics, index=False)
    table = comparison.comparison_files(
        metrics, FULL, tmp_path / "comparison.csv", tmp_path / "comparison"
    )
    assert pd.read_csv(tmp_path / "comparison.csv").shape == table.shape == (8, 7)
    assert_figure(tmp_path / "comparison", (2 * 3.2, 3.6))  # lai and et
    empty = tmp_path / "empty.csv"
    gridded_metrics().head(0).to_csv(empty, index=False)
    with pytest.raises(ValueError, match="empty.csv: no test rows of the compared models"):
        comparison.comparison_files(empty, FULL, tmp_path / "c.csv", tmp_path / "c")
