"""The bounded transform: reference values, round trip, bounds for extreme inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from hybridland.model import parameters
from hybridland.model.parameters import GROUPS


def test_table_matches_the_reference_file(reference_path):
    ds = xr.open_dataset(reference_path)
    assert tuple(ds.param.values) == parameters.NAMES
    for info, group, pos, lo, hi in zip(
        parameters.TABLE,
        ds.param_group.values,
        ds.param_group_position.values,
        ds.param_min.values,
        ds.param_max.values,
    ):
        assert info.group == group
        assert parameters.group_names(group)[pos] == info.name
        assert (np.float32(info.minimum), np.float32(info.maximum)) == (
            np.float32(lo),
            np.float32(hi),
        )
    assert [len(parameters.group_names(g)) for g in GROUPS] == [31, 7, 2]


@pytest.mark.parametrize(
    "x64, variable, rtol",
    [(False, "parameters_from_real_ref32", 1e-6), (True, "parameters_from_real_ref64", 1e-12)],
)
def test_transform_matches_the_published_transform(reference_path, x64, variable, rtol):
    ds = xr.open_dataset(reference_path)
    real = ds.parameters_real.values
    expected = ds[variable].values
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        for g in GROUPS:
            idx = [parameters.NAMES.index(n) for n in parameters.group_names(g)]
            got = np.asarray(
                parameters.to_physical(jnp.asarray(real[:, idx], dtype), g), np.float64
            )
            np.testing.assert_allclose(got, expected[:, idx], rtol=rtol)


@pytest.mark.parametrize("x64", [False, True])
def test_round_trip_and_bounds_for_extreme_inputs(x64):
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        for g in GROUPS:
            lo, hi = (jnp.asarray(b, dtype) for b in parameters.bounds(g))
            n = lo.shape[0]
            x = jnp.asarray(np.random.default_rng(0).normal(0, 3, (200, n)), dtype)
            back = parameters.to_real(parameters.to_physical(x, g), g)
            np.testing.assert_allclose(
                back, x, rtol=2e-3 if not x64 else 1e-9, atol=1e-4 if not x64 else 1e-10
            )
            extreme = jnp.asarray(
                [[-jnp.inf], [-1e30], [-1e6], [0.0], [1e6], [1e30], [jnp.inf]], dtype
            ) * jnp.ones(n, dtype)
            theta = parameters.to_physical(extreme, g)
            assert bool(jnp.all((theta >= lo) & (theta <= hi)))
            np.testing.assert_allclose(theta[3], jnp.sqrt(lo * hi), rtol=1e-5)


def test_out_of_bounds_names_parameter_and_first_index():
    values = {p.name: np.full(4, np.sqrt(p.minimum * p.maximum)) for p in parameters.TABLE}
    assert parameters.out_of_bounds(values) is None
    # A bound itself is in, in float64 or rounded to float32 (0.01 rounds below itself).
    values["tor_litter"] = np.array([0.01, np.float32(0.01), 1e-4, np.float32(1e-4)])
    assert parameters.out_of_bounds(values) is None
    values["tor_litter"] = np.array([0.01, 0.0100001, 1e-4, 1e-4])
    assert parameters.out_of_bounds(values).startswith("parameter 'tor_litter' = 0.0100001 at")
    values["tor_litter"] = np.full(4, 1e-3)
    values["LCMA"] = np.array([10.0, 20.0, 300.0, 400.0])
    assert (
        parameters.out_of_bounds(values)
        == "parameter 'LCMA' = 300.0 at index (2,) is outside its bounds [5, 200] gC m-2"
    )
    values["LCMA"] = np.array([10.0, np.nan, 30.0, 40.0])
    assert parameters.out_of_bounds(values).startswith("parameter 'LCMA' = nan at index (1,)")
    del values["Q10"]
    assert parameters.out_of_bounds(values) == "missing parameters: Q10"


def test_phase_statistics_are_circular():
    year = parameters.DAYS_PER_YEAR
    # Members a whole year apart agree; the mean stays in the first member's year.
    assert parameters.ensemble_mean("Bday", [400.0, 400.0 + 2 * year]) == pytest.approx(400.0)
    assert parameters.ensemble_std("Fday", [400.0, 400.0 + year]) == pytest.approx(0.0)
    # Across the turn of the year: phases -0.5 d and +0.75 d average to +0.125 d, not mid-year.
    assert parameters.ensemble_mean("Bday", [2 * year - 0.5, year + 0.75]) == pytest.approx(
        2 * year + 0.125
    )
    # Kept within the bounds [365.25, 1461]: 365.5 and 730 (364.75 a year on) average to
    # 365.125, below the bound, so the mean is given a year later.
    assert parameters.ensemble_mean("Fday", [365.5, 2 * year - 0.5]) == pytest.approx(730.375)
    assert parameters.ensemble_std("Bday", [2 * year - 0.5, year + 0.75]) == pytest.approx(0.625)
    np.testing.assert_allclose(
        parameters.aligned("Fday", [1210.0, 500.0], [840.0, 1200.0]),
        [1210.0 - year, 500.0 + 2 * year],
    )
    # Everything else is linear.
    values = np.array([[1.0, 10.0], [3.0, 20.0]])
    np.testing.assert_allclose(parameters.ensemble_mean("LCMA", values), [2.0, 15.0])
    np.testing.assert_allclose(parameters.ensemble_std("LCMA", values), [1.0, 5.0])
    np.testing.assert_array_equal(parameters.aligned("LCMA", [5.0], [900.0]), [5.0])
