"""Hierarchical partitioning: Shapley values, the global table, per-cell maps and the entry
point."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from figures import assert_figure

from hybridland.analysis import partition
from hybridland.training import setups

LETTERS = "ABCDE"


def brute_force(values, groups):
    """Average over every ordering of the gain from adding each group (the definition)."""
    totals = dict.fromkeys(groups, 0.0)
    orderings = list(itertools.permutations(groups))
    for order in orderings:
        before = frozenset()
        for g in order:
            totals[g] += values[before | {g}] - values[before]
            before = before | {g}
    return {g: t / len(orderings) for g, t in totals.items()}


def random_values(rng, groups):
    return {s: float(rng.normal()) for s in partition.subsets(groups)}


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_shapley_matches_enumeration_of_orderings(n):
    rng = np.random.default_rng(n)
    groups = list(LETTERS[:n])
    for _ in range(3):
        values = random_values(rng, groups)
        expected = brute_force(values, groups)
        got = partition.shapley(values, groups)
        assert list(got) == groups
        for g in groups:
            assert got[g] == pytest.approx(expected[g], abs=1e-12)
        assert values[frozenset()] + sum(got.values()) == pytest.approx(
            values[frozenset(groups)], abs=1e-12
        )


def test_worked_example_two_groups():
    # v(0)=0.2, v(A)=0.5, v(B)=0.4, v(AB)=0.9.
    # Order A then B: A gains 0.5-0.2=0.3, B gains 0.9-0.5=0.4.
    # Order B then A: B gains 0.4-0.2=0.2, A gains 0.9-0.4=0.5.
    # A = (0.3+0.5)/2 = 0.4, B = (0.4+0.2)/2 = 0.3; 0.2 + 0.4 + 0.3 = 0.9.
    f = frozenset
    values = {f(): 0.2, f("A"): 0.5, f("B"): 0.4, f("AB"): 0.9}
    got = partition.shapley(values, ["A", "B"])
    assert got == pytest.approx({"A": 0.4, "B": 0.3}, abs=1e-12)


def test_additive_set_function_gives_each_group_its_own_gain():
    # v(S) = 0.1 + sum of own effects: no interactions, so phi_g is g's effect.
    effects = {"PFT": 0.3, "CLIM": 0.2, "SOIL": -0.05}
    values = {s: 0.1 + sum(effects[g] for g in s) for s in partition.subsets(list(effects))}
    assert partition.shapley(values, list(effects)) == pytest.approx(effects, abs=1e-12)


def test_weights_of_n_groups_sum_to_one_per_group():
    for n in range(1, 6):
        total = sum(math.comb(n - 1, k) * partition.shapley_weight(k, n) for k in range(n))
        assert total == pytest.approx(1.0, abs=1e-15)


def test_efficiency_check_fires_on_inconsistent_contributions():
    with pytest.raises(partition.PartitionError, match="differ from the full model by 0.1"):
        partition.check_efficiency({"A": 0.4, "B": 0.3}, baseline=0.2, full=1.0)
    partition.check_efficiency({"A": 0.4, "B": 0.3}, baseline=0.2, full=0.9 + 5e-10)


def test_efficiency_check_guards_the_algorithm(monkeypatch):
    # Equal weights 1/n instead of |S|!(n-|S|-1)!/n! break efficiency for 3 groups.
    monkeypatch.setattr(partition, "shapley_weight", lambda size, n: 1.0 / n)
    values = random_values(np.random.default_rng(0), ["A", "B", "C"])
    with pytest.raises(partition.PartitionError, match="inconsistent"):
        partition.shapley(values, ["A", "B", "C"])


def test_missing_and_non_finite_subsets_are_reported():
    f = frozenset
    with pytest.raises(ValueError, match=r"missing for subsets \[\['B'\]\]"):
        partition.shapley({f(): 0.0, f("A"): 1.0, f("AB"): 2.0}, ["A", "B"])
    with pytest.raises(ValueError, match="not finite"):
        partition.shapley({f(): 0.0, f("A"): np.nan, f("B"): 1.0, f("AB"): 2.0}, ["A", "B"])


# ---- the global table


POOLED, CELL = "r2_score_pooled", "nse_cell_median"


def metrics_table(values_by_setup, variables=("lai", "et")):
    """Ensemble test rows with the given r2_score; explained_variance = r2 / 2; plus distractor
    rows."""
    rows = []
    for setup, value in values_by_setup.items():
        for i, variable in enumerate(variables):
            for member, split, r2 in (
                ("ensemble", "test", value + i),
                ("0", "test", 99.0),
                ("ensemble", "train", -99.0),
            ):
                rows.append(("0p25deg", setup, member, variable, split, POOLED, r2, r2 / 2, 10))
            rows.append(("0p125deg", setup, "ensemble", variable, "test", POOLED, 42.0, 42.0, 10))
            rows.append(("0p25deg", setup, "ensemble", variable, "test", CELL, 77.0, 77.0, 3))
    return pd.DataFrame(
        rows,
        columns=[
            "grid",
            "setup",
            "member",
            "variable",
            "split",
            "metric",
            "r2_score",
            "explained_variance",
            "n",
        ],
    )


TWO = {"CONTROL": 0.2, "PFT": 0.5, "CLIM": 0.4, "PFT+CLIM": 0.9, "LATLON": 0.7}


def test_global_partition_reads_ensemble_test_rows():
    table = partition.global_partition(metrics_table(TWO), "0p25deg", ["PFT", "CLIM"], "r2_score")
    assert list(table.columns) == ["variable", "metric", "component", "value"]
    lai = table[table.variable == "lai"].set_index("component")["value"]
    assert list(lai.index) == ["baseline", "PFT", "CLIM", "full"]
    assert lai.to_dict() == pytest.approx(
        {"baseline": 0.2, "PFT": 0.4, "CLIM": 0.3, "full": 0.9}, abs=1e-12
    )
    et = table[table.variable == "et"].set_index("component")[
        "value"
    ]  # every setup + 1: same gains
    assert et.to_dict() == pytest.approx(
        {"baseline": 1.2, "PFT": 0.4, "CLIM": 0.3, "full": 1.9}, abs=1e-12
    )


def test_partition_table_has_both_metrics_and_exact_columns():
    table = partition.partition_table(metrics_table(TWO), "0p25deg", ["PFT", "CLIM"])
    assert (
        list(table.columns)
        == list(partition.COLUMNS)
        == ["variable", "metric", "component", "value"]
    )
    assert list(dict.fromkeys(table.metric)) == ["r2_score", "explained_variance"]
    ev = table[(table.metric == "explained_variance") & (table.variable == "lai")].set_index(
        "component"
    )["value"]
    assert ev["PFT"] == pytest.approx(0.2) and ev["CLIM"] == pytest.approx(0.15)


def test_non_finite_variable_is_left_out_and_missing_setup_is_an_error():
    metrics = metrics_table(TWO)
    metrics.loc[(metrics.variable == "et") & (metrics.setup == "CLIM"), "r2_score"] = np.nan
    table = partition.global_partition(metrics, "0p25deg", ["PFT", "CLIM"], "r2_score")
    assert set(table.variable) == {"lai"}
    without = metrics_table({k: v for k, v in TWO.items() if k != "CLIM"})
    with pytest.raises(ValueError, match=r"0p25deg lack .* setups \['CLIM'\]"):
        partition.global_partition(without, "0p25deg", ["PFT", "CLIM"], "r2_score")


# ---- per-cell maps

LAT, LON = np.array([38.125, 38.375]), np.array([-108.875, -108.625, -108.375])


def skill_maps(groups, rng):
    """Random lai_r2 maps in [0, 1] per setup; cell (1, 2) is NaN in CONTROL."""
    maps = {}
    for setup in setups.factorial(groups):
        values = rng.uniform(0, 1, (LAT.size, LON.size))
        if setup == "CONTROL":
            values[1, 2] = np.nan
        maps[setup] = xr.Dataset(
            {"lai_r2": (("lat", "lon"), values)}, coords={"lat": LAT, "lon": LON}
        )
    return maps


def test_cell_partition_matches_scalar_shapley_per_cell():
    groups = ["PFT", "CLIM", "SOIL"]
    maps = skill_maps(groups, np.random.default_rng(3))
    cells = partition.cell_partition(maps, groups, "lai")
    assert cells["lai_contribution"].dims == ("group", "lat", "lon")
    assert list(cells.group.values) == groups
    for i, j in itertools.product(range(LAT.size), range(LON.size)):
        if (i, j) == (1, 2):
            continue
        values = {frozenset(setups.groups_of(s)): float(m.lai_r2[i, j]) for s, m in maps.items()}
        expected = partition.shapley(values, groups)
        got = cells["lai_contribution"][:, i, j].values
        np.testing.assert_allclose(got, [expected[g] for g in groups], atol=1e-12)
        assert cells["lai_dominant"][i, j] == int(np.argmax(got))
        full, base = values[frozenset(groups)], values[frozenset()]
        assert cells["lai_spatialization_share"][i, j] == pytest.approx(
            np.clip((full - base) / full, 0, 1)
        )
    assert np.isnan(cells["lai_contribution"][:, 1, 2]).all()
    assert cells["lai_dominant"][1, 2] == partition.NO_GROUP
    assert cells["lai_dominant"].attrs["flag_meanings"] == "PFT CLIM SOIL"


def test_spatialization_share_is_clipped_and_undefined_without_skill():
    share = partition.spatialization_share(
        np.array([0.2, 0.5, 0.1, 0.0]), np.array([0.8, 0.4, 0.0, 0.5])
    )
    np.testing.assert_allclose(share, [0.75, 0.0, np.nan, 1.0])


def test_cell_partition_needs_every_setup_on_one_grid():
    groups = ["PFT", "CLIM"]
    maps = skill_maps(groups, np.random.default_rng(0))
    with pytest.raises(ValueError, match="no skill maps for setup 'PFT'"):
        partition.cell_partition({k: v for k, v in maps.items() if k != "PFT"}, groups, "lai")
    maps["CLIM"] = maps["CLIM"].assign_coords(lat=LAT + 0.5)
    with pytest.raises(ValueError, match="not on the same grid"):
        partition.cell_partition(maps, groups, "lai")


def test_partition_files_writes_table_maps_and_figures(tmp_path):
    pytest.importorskip("matplotlib", reason="figures need matplotlib")
    groups = ["PFT", "CLIM"]
    metrics = tmp_path / "metrics.csv"
    metrics_table(TWO).to_csv(metrics, index=False)
    paths = {}
    for setup, maps in skill_maps(groups, np.random.default_rng(1)).items():
        paths[setup] = tmp_path / f"{setup}.nc"
        maps.assign(sif_r2=maps.lai_r2 / 2).to_netcdf(paths[setup])
    out = tmp_path / "partition"
    partition.partition_files(
        metrics,
        paths,
        "0p25deg",
        groups,
        out / "global.csv",
        out / "bars",
        out / "cells.nc",
        out / "maps",
    )
    table = pd.read_csv(out / "global.csv")
    assert list(table.columns) == ["variable", "metric", "component", "value"]
    assert len(table) == 2 * 2 * 4  # variables x metrics x (baseline, 2 groups, full)
    with xr.open_dataset(out / "cells.nc") as cells:
        assert {"lai_contribution", "sif_dominant", "sif_spatialization_share"} <= set(
            cells.data_vars
        )
    for stem in ("bars", "maps"):
        assert_figure(out / stem)


def test_partition_files_of_a_site_study_write_only_the_global_table(tmp_path):
    pytest.importorskip("matplotlib", reason="figures need matplotlib")
    metrics = tmp_path / "metrics.csv"
    metrics_table(TWO).to_csv(metrics, index=False)
    out = tmp_path / "partition"
    partition.partition_files(
        metrics, {}, "0p25deg", ["PFT", "CLIM"], out / "global.csv", out / "bars"
    )
    assert len(pd.read_csv(out / "global.csv")) == 2 * 2 * 4
    assert sorted(p.name for p in out.iterdir()) == ["bars.pdf", "bars.png", "global.csv"]
