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


FULL = "PFT+CLIM+SOIL+AGE"
# Identifiability verdicts calling every parameter identifiable in both explained setups.
EVERYTHING = {FULL: set(parameters.NAMES), "CLIM+SOIL+AGE": set(parameters.NAMES)}


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
        {"setup": FULL, "parameter": ["Q10", "LCMA", "f_gpp"], "spearman": [0.9, np.nan, 0.2]}
    )
    groups = pd.DataFrame(
        {
            "setup": FULL,
            "parameter": ["Q10", "Q10", "f_gpp", "f_gpp"],
            "group": ["CLIM", "SOIL"] * 2,
            "share": [0.95, 0.05, 0.85, 0.15],
        }
    )
    card = rows(scorecard.shap_checks(ranks, groups, DESIGNED, EVERYTHING, "g"))
    assert list(card.index) == [
        f"g/shap/rank/{FULL}/Q10",
        f"g/shap/rank/{FULL}/f_gpp",
        f"g/shap/no_influence/{FULL}/SOIL",
    ]
    assert card.passed.tolist() == [True, False, False]
    assert card.loc[f"g/shap/no_influence/{FULL}/SOIL", "value"] == pytest.approx(0.15)


def test_shap_no_influence_counts_per_quantity_the_groups_that_do_not_drive_it():
    ranks = pd.DataFrame(columns=["setup", "parameter", "spearman"])
    groups = pd.DataFrame(
        {
            "setup": FULL,
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
    designed = rows(scorecard.shap_checks(ranks, groups, DESIGNED, EVERYTHING, "g"))
    assert designed.value.to_dict() == {
        f"g/shap/no_influence/{FULL}/PFT": pytest.approx(0.05),
        f"g/shap/no_influence/{FULL}/SOIL": pytest.approx(0.6),
        f"g/shap/no_influence/{FULL}/AGE": pytest.approx(0.3),
    }
    # Record: SOIL drives field_capacity, Cwood reads PFT only, tor_wood is constant (its
    # shares are not counted: there is no variation to attribute).
    configured = rows(scorecard.shap_checks(ranks, groups, SOIL_TRUTH, EVERYTHING, "g"))
    assert configured.value.to_dict() == {
        f"g/shap/no_influence/{FULL}/PFT": pytest.approx(0.1),
        f"g/shap/no_influence/{FULL}/SOIL": pytest.approx(0.2),
        f"g/shap/no_influence/{FULL}/AGE": pytest.approx(0.3),
    }


def test_shap_no_influence_skips_quantities_whose_driver_the_setup_lacks():
    ranks = pd.DataFrame(columns=["setup", "parameter", "spearman"])
    groups = pd.DataFrame(
        {
            "setup": ["CLIM+SOIL+AGE"] * 4 + [FULL] * 2,
            "parameter": ["Cwood", "Cwood", "Q10", "Q10", "Cwood", "Cwood"],
            "group": ["SOIL", "AGE", "SOIL", "AGE", "SOIL", "AGE"],
            "share": [0.5, 0.5, 0.02, 0.03, 0.3, 0.7],
        }
    )
    assert DESIGNED["Cwood"] == ("PFT", "AGE") and DESIGNED["Q10"] == ("CLIM",)
    card = rows(scorecard.shap_checks(ranks, groups, DESIGNED, EVERYTHING, "g"))
    # Without PFT, Cwood can only be reached through proxies: only Q10 counts there.
    assert card.value.to_dict() == {
        "g/shap/no_influence/CLIM+SOIL+AGE/SOIL": pytest.approx(0.02),
        "g/shap/no_influence/CLIM+SOIL+AGE/AGE": pytest.approx(0.03),
        f"g/shap/no_influence/{FULL}/SOIL": pytest.approx(0.3),
    }
    assert card.passed.tolist() == [True, True, False]


def test_shap_checks_score_only_identifiable_quantities():
    ranks = pd.DataFrame(
        {
            "setup": [FULL, FULL, FULL, "CLIM"],
            "parameter": ["Q10", "root_allocation", "Bday", "Q10"],
            "spearman": [0.2, 0.3, 0.9, 0.1],
        }
    )
    groups = pd.DataFrame(
        {"setup": FULL, "parameter": ["Q10", "Q10"], "group": ["CLIM", "SOIL"], "share": [0.8, 0.2]}
    )
    # root_allocation reads f_gpp, f_fol, flab and f_root: one not identifiable drops it;
    # CLIM has no verdict at all
    identifiable = {FULL: {"Bday", "f_gpp", "f_fol", "flab"}}
    card = rows(scorecard.shap_checks(ranks, groups, DESIGNED, identifiable, "g"))
    assert list(card.index) == [f"g/shap/rank/{FULL}/Bday"]
    identifiable[FULL] |= {"Q10", "f_root"}
    card = rows(scorecard.shap_checks(ranks, groups, DESIGNED, identifiable, "g"))
    assert list(card.index) == [
        f"g/shap/rank/{FULL}/Q10",
        f"g/shap/rank/{FULL}/root_allocation",
        f"g/shap/rank/{FULL}/Bday",
        f"g/shap/no_influence/{FULL}/SOIL",
    ]


def test_a_group_driving_every_quantity_gets_no_shap_check():
    ranks = pd.DataFrame(columns=["setup", "parameter", "spearman"])
    groups = pd.DataFrame(
        {"setup": FULL, "parameter": "LCMA", "group": ["PFT", "CONTROL"], "share": [0.9, 0.1]}
    )
    assert DESIGNED["LCMA"] == ("PFT",)
    assert scorecard.shap_checks(ranks, groups, DESIGNED, EVERYTHING, "g") == []


def test_identifiability_checks_score_the_combined_verdict_and_its_recovery():
    names = list(parameters.NAMES)
    visible = pd.Series(False, index=names)
    visible[names[:20]] = True
    identifiable = np.zeros(40, bool)
    identifiable[:18] = True  # two visible ones missed
    identifiable[30:33] = True  # three invisible ones called identifiable
    published = pd.DataFrame(
        {"setup": "S", "parameter": names, "criterion": "cv_published", "identifiable": True}
    )
    combined = published.assign(criterion="combined", identifiable=identifiable)
    summary = pd.concat([published, combined], ignore_index=True)
    r = np.where(np.arange(40) < 10, 0.95, 0.5)  # identifiable: 10 at 0.95, 11 at 0.5
    r[0] = np.nan  # a constant truth has no r
    recovery = pd.DataFrame({"grid": "g", "setup": "S", "parameter": names, "pearson_r": r})
    # The learned analysis flags the two missed visible ones as a pair (seen together); the
    # truth sees three parameters only in pairs, two of which the learned analysis flags.
    pairs = pd.DataFrame(
        {"setup": ["S", "T"], "parameter_a": [names[18], names[0]], "parameter_b": names[19:21]}
    )
    truth_pairs = pd.DataFrame({"parameter_a": names[18:20], "parameter_b": names[19:21]})
    card = rows(
        scorecard.identifiability_checks(summary, pairs, visible, truth_pairs, recovery, "g")
    )
    assert card.loc["g/identifiability/agreement/S", "value"] == pytest.approx(37 / 40)
    assert card.loc["g/identifiability/identifiable_but_invisible/S", "value"] == pytest.approx(
        3 / 20
    )
    assert card.loc["g/identifiability/equifinal_flagged/S", "value"] == pytest.approx(2 / 3)
    # 20 finite r of the 21 called identifiable: nine 0.95, eleven 0.5 -> median 0.5
    assert card.loc["g/identifiability/recovery_r/S", "value"] == pytest.approx(0.5)
    assert card.passed.tolist() == [True, False, False, False]
    none = pairs.head(0)
    every = rows(
        scorecard.identifiability_checks(summary, none, visible | True, none, recovery.head(0), "g")
    )
    assert every.value.to_dict() == {"g/identifiability/agreement/S": pytest.approx(21 / 40)}
    with pytest.raises(ValueError, match="no 'combined' rows"):
        scorecard.identifiability_checks(published, pairs, visible, none, recovery, "g")


def test_training_checks_compare_the_full_setup_with_the_best_subset():
    r2 = {  # setup -> (lai, sif, et) test R2
        "CONTROL": (0.1, 0.1, 0.1),
        "PFT+CLIM": (0.93, 0.80, 0.75),
        "PFT+CLIM+SOIL": (0.90, 0.85, 0.70),
        "LATLON": (0.99, 0.99, 0.99),  # not a subset of the factorial: not compared
    }
    r2[FULL] = (0.925, 0.86, 0.70)
    metrics = pd.DataFrame(
        [
            ("g", setup, "ensemble", v, "test", "r2_score_pooled", x)
            for setup, values in r2.items()
            for v, x in zip(("lai", "sif", "et"), values)
        ]
        + [("g", FULL, "0", "lai", "test", "r2_score_pooled", 0.0)],  # a member row: ignored
        columns=["grid", "setup", "member", "variable", "split", "metric", "r2_score"],
    )
    losses = {
        "A": {"kept": [0, 2], "final_train_loss": {"0": 40.0, "1": 1027.0, "2": 70.0}},
        "B": {"kept": [1, 2], "final_train_loss": {"0": 90.0, "1": 43.0, "2": 112.0}},
    }
    card = rows(scorecard.training_checks(metrics, ["PFT", "CLIM", "SOIL", "AGE"], losses, "g"))
    assert card.value.to_dict() == {
        "g/training/full_minus_best_subset/lai": pytest.approx(-0.005),
        "g/training/full_minus_best_subset/sif": pytest.approx(0.01),
        "g/training/full_minus_best_subset/et": pytest.approx(-0.05),
        f"g/training/test_r2/{FULL}/lai": pytest.approx(0.925),
        "g/training/kept_loss_ratio": pytest.approx(112 / 43),
    }
    assert card.passed.tolist() == [True, True, False, True, False]


def test_pca_checks_use_the_first_three_components():
    congruence = pd.DataFrame(
        {
            "component": ["PC1", "PC2", "PC3", "PC4"],
            "congruence": [0.95, 0.7, 0.9, 0.1],
            "learned_ratio": [0.5, 0.3, 0.1, 0.1],
            "true_ratio": [0.47, 0.1, 0.13, 0.25],
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
    ranks = pd.DataFrame({"setup": FULL, "parameter": ["Q10"], "spearman": [0.8]})
    groups = pd.DataFrame(
        {
            "setup": FULL,
            "parameter": ["Q10", "Q10"],
            "group": ["CLIM", "SOIL"],
            "share": [0.97, 0.03],
        }
    )
    names = list(parameters.NAMES)
    summary = pd.DataFrame(
        {"setup": FULL, "parameter": names, "criterion": "combined", "identifiable": True}
    )
    recovery = pd.DataFrame({"grid": "g", "setup": FULL, "parameter": names, "pearson_r": 0.95})
    pairs = pd.DataFrame(columns=["setup", "parameter_a", "parameter_b", "value"])
    metrics = pd.DataFrame(
        [
            ("g", setup, "ensemble", v, "test", "r2_score_pooled", x)
            for setup, x in (("PFT", 0.9), ("PFT+SOIL", 0.91))
            for v in ("lai", "sif", "et")
        ],
        columns=["grid", "setup", "member", "variable", "split", "metric", "r2_score"],
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
        "recovery": recovery,
        "pairs": pairs,
        "truth_pairs": pairs.drop(columns="setup"),
        "metrics": metrics,
        "sens": sens,
        "congruence": congruence,
        "partition": partition,
    }.items():
        paths[name] = tmp_path / f"{name}.csv"
        table.to_csv(paths[name], index=False)
    selected = tmp_path / "selected.json"
    selected.write_text('{"kept": [0, 1], "final_train_loss": {"0": 40.0, "1": 50.0, "2": 900}}')
    truth = tmp_path / "truth_parameters.nc"
    write_truth(truth, DESIGNED)
    grids = {
        "g": {
            "shap": {FULL: (paths["ranks"], paths["groups"])},
            "identifiability": paths["summary"],
            "sensitivity": paths["sens"],
            "pairs": paths["pairs"],
            "truth_pairs": paths["truth_pairs"],
            "congruence": paths["congruence"],
            "partition": paths["partition"],
            "selected": {"PFT": selected},
            "truth": truth,
        }
    }

    def card():
        return scorecard.scorecard_files(
            grids,
            ["PFT", "SOIL"],
            paths["metrics"],
            paths["recovery"],
            tmp_path / "scorecard.csv",
            tmp_path / "scorecard",
        )

    table = card()
    written = pd.read_csv(tmp_path / "scorecard.csv")
    assert list(written.columns) == ["check", "value", "threshold", "passed"]
    # training 5, shap 2, identifiability 2 (all visible: 1 left out), pca 2, partition 1
    assert written.passed.all() and len(written) == len(table) == 12
    assert "g/partition/no_influence/SOIL/r2_score" in set(written.check)
    assert written.set_index("check").loc["g/training/kept_loss_ratio", "value"] == 1.25
    assert_figure(tmp_path / "scorecard", (8.0, 3.0))  # 12 rows: the least height, 3 inches
    # A record in which SOIL drives a parameter (not Q10): the partition check is left out.
    write_truth(truth, SOIL_TRUTH)
    table = card()
    assert "g/partition/no_influence/SOIL/r2_score" not in set(table.check)
    assert f"g/shap/no_influence/{FULL}/SOIL" in set(table.check) and len(table) == 11
