"""Check this DALEC993 against numerical reference runs of the published model.

A reference file (layout of ``dalec993_cases.nc``: dims case, time, param,
met_column, precision) holds forcing, parameters and the 44 outputs of each
case in float32 and float64. The metric per output is the reference README's
e = max_t |a - b| / max_t |b|, worst over cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import xarray as xr

from hybridland.model import dalec, forward

# Tolerances of the reference README: float32 run against the float64 reference.
F32_VS_F64: dict[str, float] = {name: 1e-4 for name in dalec.OUTPUTS} | {
    "wood_litter": 2e-3,
    "root_litter": 1e-3,
    "respiration_hetero_litter": 1e-3,
    "respiration_hetero_som": 2e-1,
    "litter_to_som": 5e-4,
    "root_fire_combust": 2e-4,
    "wood_fire_combust": 2e-4,
    "root_fire_transfer": 2e-4,
    "wood_fire_transfer": 2e-4,
    "nee": 2e-3,
    "nbe": 2e-3,
    "next_wood_pool": 2e-4,
    "next_som_pool": 2e-4,
}
F32_VS_F32 = 1e-4  # two float32 implementations of the same formulas
F64_VS_F64 = 1e-9


class Case(NamedTuple):
    label: str
    forcing: xr.Dataset
    parameters: dict[str, float]
    reference: xr.Dataset  # outputs, dims (precision, time)


class Comparison(NamedTuple):
    """Worst error of one output over cases, against one reference precision."""

    output: str
    precision: str
    max_abs: float
    relative: float  # e of the reference README
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(self.relative <= self.tolerance)


def cases(path: Path) -> Iterator[Case]:
    """Every case of a reference file, as forcing dataset, parameters and outputs."""
    ds = xr.open_dataset(path)
    missing = [v for v in ("met", "parameters", "n_time", *dalec.OUTPUTS) if v not in ds]
    if missing:
        raise ValueError(f"{path}: not a DALEC993 reference file, lacks variables {missing}")
    columns = [str(c) for c in ds.met_column.values]
    for i, label in enumerate(ds.case.values):
        n = int(ds.n_time.values[i])
        met = ds.met.values[i, :n]
        forcing = xr.Dataset(
            {c: ((forward.TIME,), met[:, columns.index(c)]) for c in forward.MET_VARIABLES}
            | {c: ((), met[0, columns.index(c)]) for c in forward.STATIC_VARIABLES}
        )
        params = {str(p): float(v) for p, v in zip(ds.param.values, ds.parameters.values[i])}
        outputs = ds[list(dalec.OUTPUTS)].isel(case=i, time=slice(0, n)).load()
        yield Case(str(label), forcing, params, outputs)


def relative_error(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(max abs error, max abs error / max |expected|); NaN counts as failure."""
    diff = np.abs(np.asarray(actual, np.float64) - expected)
    if np.isnan(diff).any():
        return float("nan"), float("inf")
    max_abs = float(diff.max(initial=0.0))
    scale = float(np.abs(expected).max(initial=0.0))
    return max_abs, (max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf")))


def compare(path: Path) -> list[Comparison]:
    """Run every case in the active JAX precision and compare with the reference.

    float32 runs are held to the float32 reference (1e-4) and to the float64
    reference (per-output tolerance); float64 runs to the float64 reference (1e-9).
    """
    x64 = jnp.zeros(()).dtype == jnp.float64
    targets = {"float64": None} if x64 else {"float32": None, "float64": None}
    worst: dict[tuple[str, str], tuple[float, float]] = {}
    for case in cases(path):
        result = forward.run(case.parameters, case.forcing, outputs=dalec.OUTPUTS)
        for name in dalec.OUTPUTS:
            for precision in targets:
                expected = case.reference[name].sel(precision=precision).values
                err = relative_error(result[name].values, expected)
                old = worst.get((name, precision), (0.0, 0.0))
                worst[(name, precision)] = (max(old[0], err[0]), max(old[1], err[1]))
    return [
        Comparison(name, precision, *worst[(name, precision)], _tolerance(name, precision, x64))
        for name in dalec.OUTPUTS
        for precision in targets
    ]


def _tolerance(name: str, precision: str, x64: bool) -> float:
    if x64:
        return F64_VS_F64
    return F32_VS_F32 if precision == "float32" else F32_VS_F64[name]


def report(comparisons: list[Comparison]) -> str:
    """A table with one line per output and reference precision."""
    lines = [
        f"{'output':28s} {'reference':9s} {'max_abs':>11s} {'relative':>11s} {'tolerance':>9s}  ok"
    ]
    for c in comparisons:
        flag = "ok" if c.passed else "FAIL"
        lines.append(
            f"{c.output:28s} {c.precision:9s} {c.max_abs:11.3e} {c.relative:11.3e} "
            f"{c.tolerance:9.0e}  {flag}"
        )
    return "\n".join(lines)
