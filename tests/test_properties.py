"""Property-based tests: the config checker and the driver validator never fail unclearly.

Any generated config either passes or is refused with a ConfigError naming a key; any value
written into a driver either passes or is refused naming the variable. Few, small examples,
so the file runs in seconds.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate as schema_validate

from hybridland import config as study_config
from hybridland import contract
from hybridland.data import validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")
BASE = yaml.safe_load((ROOT / "config/config.yaml").read_text())
FEW = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Mostly values that work, some that cannot: a generated config passes about half the time.
degrees = st.sampled_from([0.25, 0.5, 1.0, 1.0, 2.0, 0.125, 0.3])
spans = st.sampled_from([8.0, 6.0, 4.0, 3.0, 2.0, 1.5, 0.1, -1.0])


@st.composite
def configs(draw) -> dict:
    """The default config with a few keys drawn anew."""
    config = copy.deepcopy(BASE)
    west = draw(st.floats(-180, 170, allow_nan=False))
    south = draw(st.floats(-80, 80, allow_nan=False))
    config["region"] = {
        "west": west,
        "east": min(180.0, west + draw(spans)),
        "south": south,
        "north": min(90.0, south + draw(spans)),
    }
    first = draw(st.integers(2000, 2020))
    config["period"] = {"first_year": first, "last_year": first + draw(st.integers(-1, 3))}
    config["grids"] = draw(
        st.sampled_from([["0p25deg"], ["0p125deg"], ["0p25deg", "0p125deg"], ["sites"]])
    )
    config["driver"]["patch_deg"] = [draw(degrees), draw(degrees)]
    config["driver"]["test_fraction"] = draw(st.floats(0.01, 0.9))
    config["training"]["dev_fraction"] = draw(st.floats(0.01, 0.9))
    config["training"]["members"] = draw(st.integers(2, 4))
    config["training"]["keep_best"] = draw(st.integers(1, 3))
    config["twin"]["truth_resolution"] = draw(st.sampled_from([0.05, 0.1, 0.025, 0.03]))
    config["setups"]["per_grid"] = {g: "all" for g in ("0p25deg", "0p125deg")}
    config["analyses"]["grids"] = draw(st.sampled_from([[], ["0p25deg"], ["0p125deg"]]))
    return config


KEY = re.compile(r"\b(" + "|".join(map(re.escape, BASE)) + r")\b")


@FEW
@given(configs())
def test_any_config_passes_or_is_refused_naming_a_key(config):
    try:
        schema_validate(config, SCHEMA)
    except WorkflowError:
        return  # the schema names the key itself (tests/test_config.py)
    try:
        study_config.check(config)
    except study_config.ConfigError as error:
        assert KEY.search(str(error)), str(error)


def plausible_driver(cells: int = 4, months: int = 12) -> xr.Dataset:
    """A driver whose every checked value lies mid-range (no model run: fast)."""

    def middle(name: str) -> float:
        bounds = validate.PHYSICAL_RANGES[name]
        return 0.5 * (bounds.low + bounds.high)

    calendar = pd.date_range("2010-01-16", periods=months, freq="MS") + pd.Timedelta(days=15)
    per_cell = {p: ("cell", np.full(cells, middle(p))) for p in contract.PREDICTORS}
    forcing = {f: (("cell", "time"), np.full((cells, months), middle(f))) for f in contract.FORCING}
    targets = {
        t: (("cell", "time"), np.full((cells, months), middle(t))) for t in ("lai", "sif", "et")
    }
    inputs = {
        "lat": ("cell", np.linspace(30, 40, cells)),
        "patch": ("cell", np.arange(cells) % 2),
        "patch_test": ("patch_id", np.array([False, True])),
        "co2": ("time", np.full(months, 400.0)),
        "days": ("time", np.arange(months) * 30.0),
        "doy": ("time", (np.arange(months) * 30.0) % 365),
        "delta_t": ("time", np.full(months, 30.0)),
        "t_mean": ("cell", np.full(cells, 10.0)),
        "p_mean": ("cell", np.full(cells, 2.0)),
    }
    return xr.Dataset(
        per_cell | forcing | targets | inputs,
        coords={"time": calendar, "patch_id": np.arange(2)},
    )


DRIVER = plausible_driver()
CHECKED = [*contract.FORCING, *contract.PREDICTORS, "co2", "delta_t", "t_mean", "p_mean"]
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-9999.0, -999.0, 9.96921e36, 1e20, 255.0, -1.0, 0.0]),
)


@FEW
@given(st.sampled_from(CHECKED), st.integers(0, 3), st.integers(0, 11), values)
def test_a_value_in_the_driver_passes_or_is_refused_naming_the_variable(name, cell, month, value):
    driver = DRIVER.copy(deep=True)
    index = (cell, month)[: driver[name].ndim] if driver[name].dims[0] == "cell" else (month,)
    driver[name].values[index] = value
    bounds = validate.PHYSICAL_RANGES.get(name)
    slack = 1e-5 * max(1.0, abs(bounds.low), abs(bounds.high)) if bounds else 0.0
    plausible = np.isfinite(value) and (
        bounds is None or bounds.low - slack <= value <= bounds.high + slack
    )
    if plausible:
        validate.check_driver(driver, "d.nc")
        return
    with pytest.raises(validate.DriverError) as refusal:
        validate.check_driver(driver, "d.nc")
    message = str(refusal.value)
    assert message.startswith("driver d.nc: ") and f"'{name}'" in message
    assert ("NaN or infinite" if not np.isfinite(value) else "outside its physical range") in (
        message
    )


@FEW
@given(
    st.lists(st.sampled_from([0.5, 1.5, np.nan, np.inf, -np.inf]), min_size=1, max_size=40),
    st.floats(0, 1),
)
def test_infinite_observations_are_gaps_up_to_the_share_and_refused_above(series, share):
    data = xr.DataArray(np.array(series), dims=("time",))
    infinite = int(np.isinf(data.values).sum())
    if infinite / data.size > share:
        with pytest.raises(validate.DriverError, match="driver.max_infinite_share"):
            validate.infinite_observations(data, "lai", "d.nc", share)
        return
    cleaned = validate.infinite_observations(data, "lai", "d.nc", share)
    assert not np.isinf(cleaned.values).any()
    assert np.isnan(cleaned.values).sum() == np.isnan(data.values).sum() + infinite
    finite = np.isfinite(data.values)
    np.testing.assert_array_equal(cleaned.values[finite], data.values[finite])


@FEW
@given(
    st.lists(st.sampled_from([-9999.0, 0.0, 1.0, 2.5]), min_size=1, max_size=30),
    st.sampled_from(["_FillValue", "missing_value"]),
)
def test_declared_fill_values_become_gaps_and_nothing_else_changes(series, attribute):
    data = xr.DataArray(np.array(series), dims=("time",), attrs={attribute: -9999.0, "units": "1"})
    masked = validate.honour_fill_values(data)
    fill = data.values == -9999.0
    assert np.isnan(masked.values[fill]).all()
    np.testing.assert_array_equal(masked.values[~fill], data.values[~fill])
    assert masked.attrs == {"units": "1"}
