"""The twin scorecard: each check computed from small tables whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from figures import assert_figure

from hybridland.analysis import scorecard
from hybridland.data import twin
from hybridland.model import parameters

DESIGNED = twin.drivers()
# Another record: SOIL drives soil water, AGE drives nothing (the twin_soil study's kind).
SOIL_TRUTH = twin.drivers(
    twin.Overrides({"field_capacity": "SOIL", "tor_wood": "none", "Cwood": "PFT"})
)


def rows(checks: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(checks, columns=scorecard.COLUMNS).set_index("check")


def write_truth(path, drivers) -> None:
    """A truth_parameters.nc stand-in: one variable per parameter with its ``drivers``."""
    variables = {
        n: xr.Variable(("cell",), np.ones(1), {"drivers": " ".join(drivers[n])})
        for n in parameters.NAMES
    }
    xr.Dataset(variables).to_netcdf(path)


def test_the_no_influence_groups_follow_the_truth_record():
    assert scorecard.no_influence_groups(["PFT", "CLIM", "SOIL", "AGE"], DESIGNED) == ["SOIL"]
    assert scorecard.no_influence_groups(["PFT", "CLIM"], DESIGNED) == []
    assert scorecard.no_influence_groups(["PFT", "CLIM", "SOIL", "AGE"], SOIL_TRUTH) == ["AGE"]
    assert scorecard.no_influence_groups(["CONTROL", "LATLON", "SOIL"], SOIL_TRUTH) == []


def test_derived_quantities_are_driven_by_the_parameters_they_read():
    drivers = {n: () for n in parameters.NAMES} | {"f_root": ("SOIL",), "f_gpp": ("CLIM",)}
    assert scorecard.quantity_drivers(drivers, "root_allocation") == {"SOIL", "CLIM"}
    assert scorecard.quantity_drivers(drivers, "Q10") == set()
    assert scorecard.quantity_drivers(drivers, "f_gpp") == {"CLIM"}


def test_shap_checks_skip_undefined_ranks_and_take_the_largest_no_influence_share():
    ranks = pd.DataFrame(
        {"setup": "S", "parameter": ["Q10", "LCMA", "f_gpp"], "spearman": [0.9, np.nan, 0.2]}
    )
    groups = pd.DataFrame(
        {
            "setup": "S",
            "parameter": ["Q10", "Q10", "f_gpp", "f_gpp"],
            "group": ["CLIM", "SOIL"] * 2,
            "share": [0.95, 0.05, 0.85, 0.15],
        }
    )
    card = rows(scorecard.shap_checks(ranks, groups, DESIGNED, "g"))
    assert list(card.index) == [
        "g/shap/rank/S/Q10",
        "g/shap/rank/S/f_gpp",
        "g/shap/no_influence/S/SOIL",
    ]
    assert card.passed.tolist() == [True, False, False]
    assert card.loc["g/shap/no_influence/S/SOIL", "value"] == pytest.approx(0.15)


def test_shap_no_influence_counts_per_quantity_the_groups_that_do_not_drive_it():
    ranks = pd.DataFrame(columns=["setup", "parameter", "spearman"])
    groups = pd.DataFrame(
        {
            "setup": "S",
            "parameter": ["field_capacity"] * 3 + ["Cwood"] * 3 + ["tor_wood"] * 3,
            "group": ["PFT", "SOIL", "AGE"] * 3,
            "share": [0.1, 0.6, 0.3, 0.7, 0.2, 0.1, 0.05, 0.5, 0.45],
        }
    )
    # Designed: field_capacity reads PFT, Cwood PFT and AGE, tor_wood AGE.
    assert [DESIGNED[n] for n in ("field_capacity", "Cwood", "tor_wood")] == [
        ("PFT",),
        ("PFT", "AGE"),
        ("AGE",),
    ]
    designed = rows(scorecard.shap_checks(ranks, groups, DESIGNED, "g"))
    assert designed.value.to_dict() == {
        "g/shap/no_influence/S/PFT": pytest.approx(0.05),
        "g/shap/no_influence/S/SOIL": pytest.approx(0.6),
        "g/shap/no_influence/S/AGE": pytest.approx(0.3),
    }
    # Record: SOIL drives field_capacity, AGE drives nothing, Cwood reads PFT only.
    configured = rows(scorecard.shap_checks(ranks, groups, SOIL_TRUTH, "g"))
    assert configured.value.to_dict() == {
        "g/shap/no_influence/S/PFT": pytest.approx(0.1),
        "g/shap/no_influence/S/SOIL": pytest.approx(0.5),
        "g/shap/no_influence/S/AGE": pytest.approx(0.45),
    }


def test_a_group_driving_every_quantity_gets_no_shap_check():
    ranks = pd.DataFrame(columns=["setup", "parameter", "spearman"])
    groups = pd.DataFrame(
        {"setup": "S", "parameter": "LCMA", "group": ["PFT", "CONTROL"], "share": [0.9, 0.1]}
    )
    assert DESIGNED["LCMA"] == ("PFT",)
    assert scorecard.shap_checks(ranks, groups, DESIGNED, "g") == []


def test_identifiability_checks_count_agreement_and_identifiable_but_invisible():
    names = list(parameters.NAMES)
    visible = pd.Series(False, index=names)
    visible[names[:20]] = True
    identifiable = np.zeros(40, bool)
    identifiable[:18] = True  # two visible ones missed
    identifiable[30:33] = True  # three invisible ones called identifiable
    summary = pd.DataFrame(
        {"setup": "S", "parameter": names, "median_cv": 0.1, "identifiable": identifiable}
    )
    card = rows(scorecard.identifiability_checks(summary, visible, "g"))
    assert card.loc["g/identifiability/agreement/S", "value"] == pytest.approx(35 / 40)
    assert card.loc["g/identifiability/identifiable_but_invisible/S", "value"] == pytest.approx(
        3 / 20
    )
    assert card.passed.tolist() == [True, False]
    every = rows(scorecard.identifiability_checks(summary, visible | True, "g"))
    assert list(every.index) == ["g/identifiability/agreement/S"]


def test_pca_checks_use_the_first_three_components():
    congruence = pd.DataFrame(
        {
            "component": ["PC1", "PC2", "PC3", "PC4"],
            "congruence": [0.95, 0.7, 0.9, 0.1],
            "learned_ratio": [0.5, 0.3, 0.1, 0.1],
            "true_ratio": [0.45, 0.1, 0.2, 0.25],
        }
    )
    card = rows(scorecard.pca_checks(congruence, "g"))
    assert len(card) == 6
    assert card.loc["g/pca/ratio_gap/PC2", "value"] == pytest.approx(0.2)
    assert card.passed.tolist() == [True, True, False, False, True, True]


def test_partition_share_of_the_no_influence_group_by_hand():
    values = {
        "lai": {"PFT": 0.3, "CLIM": 0.2, "SOIL": -0.05},
        "et": {"PFT": 0.05, "CLIM": 0.1, "SOIL": 0.05},
        "reco_ec": {"PFT": 0.1, "CLIM": 0.1, "SOIL": 2.0},
    }  # site target: not scored
    table = pd.DataFrame(
        [(v, "r2_score", g, x) for v, parts in values.items() for g, x in parts.items()],
        columns=["variable", "metric", "component", "value"],
    )
    card = rows(scorecard.partition_checks(table, ["PFT", "CLIM", "SOIL"], ["SOIL"], "g"))
    assert card.loc["g/partition/no_influence/SOIL/r2_score", "value"] == pytest.approx(0.05 / 0.2)
    assert not card.passed.iloc[0]


def test_scorecard_files_write_the_table_and_figure(tmp_path):
    paths = {}
    ranks = pd.DataFrame({"setup": "S", "parameter": ["Q10"], "spearman": [0.8]})
    groups = pd.DataFrame(
        {
            "setup": "S",
            "parameter": ["Q10", "Q10"],
            "group": ["CLIM", "SOIL"],
            "share": [0.97, 0.03],
        }
    )
    names = list(parameters.NAMES)
    summary = pd.DataFrame(
        {"setup": "S", "parameter": names, "median_cv": 0.1, "identifiable": True}
    )
    sens = pd.DataFrame({"parameter": names, "target": "lai", "sensitivity": 1.0})
    congruence = pd.DataFrame(
        {"component": ["PC1"], "congruence": [0.9], "learned_ratio": [0.5], "true_ratio": [0.5]}
    )
    partition = pd.DataFrame(
        {"variable": "lai", "metric": "r2_score", "component": ["PFT", "SOIL"], "value": [0.5, 0.0]}
    )
    for name, table in {
        "ranks": ranks,
        "groups": groups,
        "summary": summary,
        "sens": sens,
        "congruence": congruence,
        "partition": partition,
    }.items():
        paths[name] = tmp_path / f"{name}.csv"
        table.to_csv(paths[name], index=False)
    grids = {
        "g": {
            "shap": {"S": (paths["ranks"], paths["groups"])},
            "identifiability": paths["summary"],
            "sensitivity": paths["sens"],
            "congruence": paths["congruence"],
            "partition": paths["partition"],
        }
    }
    truth = tmp_path / "regridded" / "g" / "truth_parameters.nc"
    truth.parent.mkdir(parents=True)
    write_truth(truth, DESIGNED)
    card = scorecard.scorecard_files(
        grids, ["PFT", "SOIL"], tmp_path / "scorecard.csv", tmp_path / "scorecard"
    )
    written = pd.read_csv(tmp_path / "scorecard.csv")
    assert list(written.columns) == ["check", "value", "threshold", "passed"]
    assert written.passed.all() and len(written) == len(card) == 6  # all visible: 1 left out
    assert "g/partition/no_influence/SOIL/r2_score" in set(written.check)
    assert_figure(tmp_path / "scorecard", (8.0, 3.0))  # 6 rows: the least height, 3 inches
    # A record in which SOIL drives a parameter (not Q10): the partition check is left out.
    other = tmp_path / "soil_truth.nc"
    write_truth(other, SOIL_TRUTH)
    grids["g"]["truth"] = other
    card = scorecard.scorecard_files(
        grids, ["PFT", "SOIL"], tmp_path / "scorecard.csv", tmp_path / "scorecard"
    )
    assert "g/partition/no_influence/SOIL/r2_score" not in set(card.check)
    assert "g/shap/no_influence/S/SOIL" in set(card.check) and len(card) == 5
