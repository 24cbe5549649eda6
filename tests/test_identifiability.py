"""Identifiability: CV across members, the summary table, and the entry point on saved members."""

from __future__ import annotations

import json

import jax
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from figures import assert_figure

from hybridland.analysis import identifiability
from hybridland.model import network, parameters
from hybridland.training import train


def hand_stack(values_by_name, n_members, n_cells):
    """Members x cells; parameters not named take the middle of their range in every member."""
    members = []
    for m in range(n_members):
        params = {
            n: np.full(n_cells, 0.5 * (p.minimum + p.maximum))
            for n, p in parameters.BY_NAME.items()
        }
        params.update({n: np.asarray(v[m], float) for n, v in values_by_name.items()})
        members.append(params)
    return identifiability.stack_parameters(members, list(range(n_members)))


def test_equal_members_have_cv_zero_and_known_spreads_give_known_cv():
    # LCMA over 2 members, 3 cells: [1, 3] -> mean 2, population std 1 -> 0.5;
    # [10, 10] -> 0; [4, 6] -> mean 5, std 1 -> 0.2.
    stack = hand_stack({"LCMA": [[1.0, 10.0, 4.0], [3.0, 10.0, 6.0]]}, n_members=2, n_cells=3)
    assert stack["LCMA"].dims == ("member", "cell")
    cv = identifiability.coefficient_of_variation(stack)
    np.testing.assert_allclose(cv["LCMA"].values, [0.5, 0.0, 0.2])
    np.testing.assert_array_equal(cv["f_gpp"].values, 0.0)
    assert set(cv.data_vars) == set(parameters.NAMES)


def test_cv_of_four_members_and_of_a_zero_mean():
    # [2, 2, 2, 6]: mean 3, population variance (1+1+1+9)/4 = 3 -> CV sqrt(3)/3.
    stack = hand_stack(
        {"Q10": [[2.0, 0.0, 0.0], [2.0, 0.0, -1.0], [2.0, 0.0, 1.0], [6.0, 0.0, 0.0]]}, 4, 3
    )
    cv = identifiability.coefficient_of_variation(stack)["Q10"].values
    assert cv[0] == pytest.approx(np.sqrt(3) / 3)
    assert cv[1] == 0.0  # agreeing on zero is agreement
    assert np.isinf(cv[2])  # spread around a zero mean


def test_summary_uses_spatial_median_and_strict_threshold():
    # CV of Clab per cell: 0.1, 0.2 (2 and 2.4 vs mean), NaN, 0.9 -> median of finite = 0.2.
    cv = identifiability.coefficient_of_variation(hand_stack({}, 2, 4))
    cv["Clab"][:] = [0.1, 0.2, np.nan, 0.9]
    cv["Cfol"][:] = 0.5
    table = identifiability.summary(cv, "PFT+CLIM", threshold=0.5)
    assert list(table.columns) == ["setup", "parameter", "median_cv", "identifiable"]
    assert list(table.parameter) == list(parameters.NAMES)
    row = table.set_index("parameter")
    assert row.loc["Clab", "median_cv"] == pytest.approx(0.2) and row.loc["Clab", "identifiable"]
    assert not row.loc["Cfol", "identifiable"]  # 0.5 is not below 0.5
    assert (table.setup == "PFT+CLIM").all()
    with pytest.raises(ValueError, match="threshold must be positive"):
        identifiability.summary(cv, "PFT", threshold=0.0)


def test_stack_rejects_a_member_without_a_parameter():
    members = [{n: np.ones(2) for n in parameters.NAMES} for _ in range(2)]
    del members[1]["LCMA"]
    with pytest.raises(ValueError, match=r"members \[7\] lack parameter 'LCMA'"):
        identifiability.stack_parameters(members, [3, 7])


# ---- trained members: a tiny CONTROL network on a 2 x 3 grid

GRID_LAT, GRID_LON = np.array([38.125, 38.375]), np.array([-108.875, -108.625, -108.375])


def tiny_driver():
    cell_y, cell_x = np.array([0, 0, 1, 1, 1]), np.array([0, 2, 0, 1, 2])
    return xr.Dataset(
        {
            "lat": ("cell", GRID_LAT[cell_y]),
            "lon": ("cell", GRID_LON[cell_x]),
            "cell_y": ("cell", cell_y.astype(np.int32)),
            "cell_x": ("cell", cell_x.astype(np.int32)),
            "grid_lat": ("y", GRID_LAT),
            "grid_lon": ("x", GRID_LON),
        },
        attrs={"grid": "0p25deg"},
    )


def tiny_member(number: int, key: int) -> train.Member:
    net = network.init_network(jax.random.key(key), 1, width=4, depth=1)
    info = {
        "setup": "CONTROL",
        "member": number,
        "seed": 0,
        "columns": ["null"],
        "options": {"width": 4, "depth": 1},
    }
    return train.Member(net, network.Standardizer(np.zeros(2), np.ones(2)), info)


def test_member_parameter_stack_from_networks():
    driver = tiny_driver()
    same = identifiability.member_parameter_stack(driver, [tiny_member(0, 1), tiny_member(1, 1)])
    assert same["LCMA"].dims == ("member", "cell") and same.sizes == {"member": 2, "cell": 5}
    assert list(same.member.values) == [0, 1]
    np.testing.assert_array_equal(same.lat.values, driver.lat.values)
    cv_same = identifiability.coefficient_of_variation(same)
    assert all(float(abs(cv_same[n]).max()) == 0.0 for n in parameters.NAMES)
    differ = identifiability.coefficient_of_variation(
        identifiability.member_parameter_stack(driver, [tiny_member(0, 1), tiny_member(1, 2)])
    )
    assert float(differ["LCMA"].max()) > 0


def test_identifiability_files_on_saved_members(tmp_path):
    pytest.importorskip("matplotlib", reason="figures need matplotlib")
    driver_path = tmp_path / "driver.nc"
    tiny_driver().to_netcdf(driver_path)
    files = []
    for number in range(3):
        weights, info = (
            tmp_path / f"m{number}" / "weights.npz",
            tmp_path / f"m{number}" / "member.json",
        )
        weights.parent.mkdir()
        train.save_member(tiny_member(number, 10 + number), weights, info)
        files.append((weights, info))
    selected = tmp_path / "selected.json"
    selected.write_text(json.dumps({"kept": [0, 2]}))
    out = tmp_path / "identifiability"
    identifiability.identifiability_files(
        driver_path,
        {"CONTROL": files},
        "0p25deg",
        0.5,
        out / "summary.csv",
        out / "cv",
        out_cv_nc=out / "cv.nc",
        selected={"CONTROL": selected},
    )
    table = pd.read_csv(out / "summary.csv")
    assert list(table.columns) == ["setup", "parameter", "median_cv", "identifiable"]
    assert len(table) == len(parameters.NAMES)
    with xr.open_dataset(out / "cv.nc") as cv:
        assert cv["LCMA"].dims == ("setup", "lat", "lon")
        assert np.isnan(cv["LCMA"].sel(setup="CONTROL")[0, 1])  # no cell there
    assert_figure(out / "cv")
    with pytest.raises(ValueError, match="not 'PFT'"):
        identifiability.identifiability_files(
            driver_path, {"PFT": files}, "0p25deg", 0.5, out / "x.csv", out / "x"
        )
