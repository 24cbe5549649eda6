"""The xarray front end: named outputs, units, cells, and clear errors before computing."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

from hybridland.model import dalec, forward, parameters


@pytest.fixture(scope="module")
def case(reference_cases):
    return reference_cases[3]  # DE-Hai typical deciduous


def test_returns_every_output_named_with_units(case):
    out = forward.run(case.parameters, case.forcing)
    assert set(out.data_vars) == set(dalec.OUTPUTS + dalec.DIAGNOSTICS)
    assert out.gpp.dims == ("time",) and out.gpp.attrs["units"] == "gC m-2 d-1"
    assert out.lai.attrs["units"] == "m2 m-2" and out.next_water_pool.attrs["units"] == "mm"
    assert out.gpp.dtype == np.float32
    np.testing.assert_allclose(
        out.gpp, case.reference.gpp.sel(precision="float32"), rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize("phase", sorted(parameters.PERIODS))
def test_a_phase_a_whole_period_apart_is_the_same_model(case, phase):
    # parameters.PERIODS is what makes the analyses' member statistics circular: the model
    # must read these phases only modulo their period, and not modulo less.
    period = parameters.PERIODS[phase]
    value = float(case.parameters[phase])
    moved = (
        value + period if value + period <= parameters.BY_NAME[phase].maximum else value - period
    )
    run = lambda v: forward.run({**case.parameters, phase: v}, case.forcing)
    base, shifted, half = run(value), run(moved), run(value + period / 2 * np.sign(moved - value))
    for name in ("lai", "gpp", "nbe"):
        np.testing.assert_allclose(shifted[name], base[name], rtol=2e-4, atol=1e-5)
    assert np.abs(half.lai - base.lai).max() > 0.1 * float(base.lai.max())


def test_cells_broadcast_and_match_single_runs(case):
    """Three cells: forcing shared, one parameter varying per cell."""
    cells = case.forcing.expand_dims(site=3).transpose("time", "site")
    cells["precip"] = case.forcing.precip * xr.DataArray([0.5, 1.0, 2.0], dims="site")
    params = dict(case.parameters, LCMA=xr.DataArray([30.0, 50.0, 90.0], dims="site"))
    out = forward.run(params, cells, outputs=("gpp", "nbe"))
    assert out.gpp.dims == ("time", "site") and list(out.data_vars) == ["gpp", "nbe"]
    single = forward.run(
        dict(case.parameters, LCMA=90.0),
        case.forcing.assign(precip=case.forcing.precip * 2.0),
        outputs=("gpp",),
    )
    np.testing.assert_allclose(out.gpp.isel(site=2), single.gpp, rtol=1e-5)  # float32 fusion order


def test_units_are_converted(case):
    kpa = case.forcing.assign(vpd=case.forcing.vpd / 10.0, t_max=case.forcing.t_max + 273.15)
    kpa.vpd.attrs["units"] = "kPa"
    kpa.t_max.attrs["units"] = "K"
    a = forward.run(case.parameters, case.forcing, outputs=("ET",))
    b = forward.run(case.parameters, kpa, outputs=("ET",))
    np.testing.assert_allclose(a.ET, b.ET, rtol=2e-5)


def test_unknown_unit_is_rejected(case):
    bad = case.forcing.copy()
    bad.vpd.attrs["units"] = "bar"
    with pytest.raises(
        forward.InputError,
        match=re.escape("forcing variable 'vpd' has units 'bar'; expected 'hPa'"),
    ):
        forward.run(case.parameters, bad)


def test_out_of_bounds_parameter_is_named(case):
    with pytest.raises(
        forward.InputError,
        match=re.escape(
            "parameter 'Q10' = 0.5 at index () is outside its bounds [0.018, 0.08] degC-1"
        ),
    ):
        forward.run(dict(case.parameters, Q10=0.5), case.forcing)


def test_nan_forcing_names_variable_and_first_index(case):
    precip = case.forcing.precip.values.copy()
    precip[[17, 40]] = [np.nan, np.inf]
    bad = case.forcing.assign(precip=("time", precip))
    with pytest.raises(
        forward.InputError,
        match=re.escape("forcing variable 'precip' has 2 non-finite values, first at time=17"),
    ):
        forward.run(case.parameters, bad)


def test_missing_forcing_variable_is_listed(case):
    with pytest.raises(
        forward.InputError, match=re.escape("forcing lacks variables ['co2', 'p_mean']")
    ):
        forward.run(case.parameters, case.forcing.drop_vars(["co2", "p_mean"]))


def test_wrong_shapes_are_rejected(case):
    with pytest.raises(
        forward.InputError, match=re.escape("forcing variable 't_min' has dims ('site',)")
    ):
        forward.run(case.parameters, case.forcing.assign(t_min=("site", np.zeros(3))))
    varying = case.forcing.assign(lat=("time", np.linspace(40, 50, case.forcing.sizes["time"])))
    with pytest.raises(forward.InputError, match="forcing variable 'lat' must be constant in time"):
        forward.run(case.parameters, varying)
    with pytest.raises(forward.InputError, match=re.escape("parameter 'LCMA' has dims ('pixel',)")):
        forward.run(
            dict(case.parameters, LCMA=xr.DataArray([30.0, 40.0], dims="pixel")), case.forcing
        )
    with pytest.raises(forward.InputError, match=re.escape("unknown outputs ['GPP']")):
        forward.run(case.parameters, case.forcing, outputs=("GPP",))


def test_checking_the_default_config_does_not_import_jax():
    import os
    import subprocess
    import sys
    from pathlib import Path

    import hybridland

    root = Path(__file__).resolve().parents[1]
    script = (
        "import sys, yaml\n"
        "import hybridland.config as c\n"
        f"c.check(yaml.safe_load(open({str(root / 'config/config.yaml')!r})))\n"
        "print(sorted(m for m in sys.modules if m == 'jax' or m.startswith('jax.')))\n"
    )
    env = os.environ | {"PYTHONPATH": str(Path(hybridland.__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
