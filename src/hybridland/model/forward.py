"""Run DALEC993 from named physical parameters and an xarray forcing dataset.

This is the friendly edge around :mod:`hybridland.model.dalec`: it checks inputs
before any computation (parameters inside their bounds, forcing present,
finite, in known units and of consistent shape), converts units, runs the
jitted core and returns every output as a named, CF-style ``xarray.Dataset``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.typing import ArrayLike
from numpy.typing import DTypeLike

from hybridland.model import dalec, parameters
from hybridland.model.units import InputError, to_canonical_units

TIME = "time"
MET_VARIABLES = dalec.Met._fields
STATIC_VARIABLES = dalec.Climate._fields


def _first_bad(values: np.ndarray, dims: Sequence[str]) -> str:
    index = np.unravel_index(int(np.flatnonzero(~np.isfinite(values))[0]), values.shape)
    return ", ".join(f"{d}={int(i)}" for d, i in zip(dims, index))


def _forcing_variable(
    forcing: xr.Dataset, name: str, cell_dims: tuple[str, ...], dtype: DTypeLike
) -> np.ndarray:
    """One variable, checked and converted, broadcast to (time?, *cells) in that order."""
    var = forcing[name]
    wanted = ((TIME,) if name in MET_VARIABLES else ()) + cell_dims
    extra = [d for d in var.dims if d not in (TIME,) + cell_dims]
    if extra or (name in MET_VARIABLES and TIME not in var.dims):
        raise InputError(
            f"forcing variable '{name}' has dims {var.dims}; expected {wanted} "
            "(cells may be omitted)"
        )
    values = np.asarray(var.values, np.float64)
    if not np.all(np.isfinite(values)):
        count = int(np.sum(~np.isfinite(values)))
        raise InputError(
            f"forcing variable '{name}' has {count} non-finite values, first at "
            f"{_first_bad(values, var.dims)}"
        )
    var = var.copy(data=to_canonical_units(name, values, var.attrs.get("units")))
    if name in STATIC_VARIABLES and TIME in var.dims:
        if not bool((var == var.isel({TIME: 0})).all()):
            raise InputError(f"forcing variable '{name}' must be constant in time")
        var = var.isel({TIME: 0}, drop=True)
    full = var.variable.set_dims({d: forcing.sizes[d] for d in wanted}).transpose(*wanted)
    return np.asarray(full.values, dtype)


def check_forcing(forcing: xr.Dataset) -> tuple[str, ...]:
    """Raise on missing variables or time axis; return the cell dims.

    The cell dims are the dataset's dims, other than time, that a forcing variable
    has; other variables (a driver's predictors and targets) do not count.
    """
    missing = [v for v in MET_VARIABLES + STATIC_VARIABLES if v not in forcing.data_vars]
    if missing:
        raise InputError(
            f"forcing lacks variables {missing}; DALEC993 needs "
            f"{list(MET_VARIABLES + STATIC_VARIABLES)}"
        )
    if TIME not in forcing.dims or forcing.sizes[TIME] == 0:
        raise InputError("forcing needs a non-empty 'time' dimension")
    used = {d for v in MET_VARIABLES + STATIC_VARIABLES for d in forcing[v].dims}
    return tuple(d for d in forcing.dims if d != TIME and d in used)


def forcing_arrays(
    forcing: xr.Dataset, dtype: DTypeLike = np.float32
) -> tuple[dalec.Met, dalec.Climate]:
    """DALEC forcing as time-major NumPy arrays: Met (time, *cells), Climate (*cells).

    The one route from a forcing dataset or a model driver to the model's arrays.
    Variables are checked (present, finite, known units), converted to the units of
    spec 3.1 and broadcast over the cell dims (:func:`check_forcing`); time-only
    variables (calendar, CO2) are shared by every cell.
    """
    cell_dims = check_forcing(forcing)

    def load(name: str) -> np.ndarray:
        return _forcing_variable(forcing, name, cell_dims, dtype)

    met = dalec.Met(*(load(v) for v in MET_VARIABLES))
    climate = dalec.Climate(*(load(v) for v in STATIC_VARIABLES))
    return met, climate


def prepare_parameters(
    values: Mapping[str, ArrayLike], cell_dims: tuple[str, ...], dtype
) -> dict[str, jax.Array]:
    """Checked parameters as arrays that broadcast against the cell dims."""
    problem = parameters.out_of_bounds(values)
    if problem:
        raise InputError(problem)
    out = {}
    for name in parameters.NAMES:
        v = values[name]
        if isinstance(v, xr.DataArray):
            unknown = [d for d in v.dims if d not in cell_dims]
            if unknown:
                raise InputError(
                    f"parameter '{name}' has dims {v.dims} not among the forcing's cell dims "
                    f"{cell_dims}"
                )
            v = (
                v.expand_dims([d for d in cell_dims if d not in v.dims])
                .transpose(*cell_dims)
                .values
            )
        out[name] = jnp.asarray(v, dtype)
    return out


@functools.partial(jax.jit, static_argnames=("outputs",))
def simulate(
    params: Mapping[str, ArrayLike],
    met: dalec.Met,
    climate: dalec.Climate,
    outputs: tuple[str, ...],
) -> dict[str, jax.Array]:
    """The jitted DALEC993 run: ``outputs`` (names), each (time, *cells)."""
    return dalec.simulate(params, met, climate, outputs=outputs).outputs


def run(
    parameter_values: Mapping[str, ArrayLike],
    forcing: xr.Dataset,
    *,
    outputs: Sequence[str] | None = None,
) -> xr.Dataset:
    """Run DALEC993 and return its outputs as a dataset.

    Args:
        parameter_values: the 40 physical parameters (initial pools included) by
            their spec names; scalars, arrays or DataArrays over the cell dims.
        forcing: variables ``days, t_min, t_max, rad, co2, doy, burned_area, vpd,
            precip, delta_t`` over ``time`` (and any cell dims) and ``lat,
            t_mean, p_mean`` over the cell dims (or constant in time), with
            ``units`` attributes (see units.CANONICAL_UNITS; common alternatives are
            converted).
        outputs: names to return (default: the 44 step outputs and the clip
            diagnostics).

    Returns:
        One variable per output, dims (time, *cell dims), with units.
    """
    names = tuple(outputs) if outputs is not None else dalec.OUTPUTS + dalec.DIAGNOSTICS
    unknown = sorted(set(names) - set(dalec.OUTPUTS + dalec.DIAGNOSTICS))
    if unknown:
        raise InputError(
            f"unknown outputs {unknown}; known: {list(dalec.OUTPUTS + dalec.DIAGNOSTICS)}"
        )
    dtype = jnp.zeros(()).dtype  # float32, or float64 when JAX x64 is on
    met, climate = forcing_arrays(forcing, dtype)
    cell_dims = check_forcing(forcing)
    params = prepare_parameters(parameter_values, cell_dims, dtype)
    result = simulate(params, met, climate, names)
    dims = (TIME,) + cell_dims
    coords = {d: forcing.coords[d] for d in dims if d in forcing.coords}
    data = {
        name: xr.Variable(
            dims, np.asarray(result[name]), {"units": dalec.output_units(name), "long_name": name}
        )
        for name in names
    }
    return xr.Dataset(data, coords=coords, attrs={"model": "DALEC993 (default water stress)"})
