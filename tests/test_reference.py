"""Parity of DALEC993 with the published model's reference runs, through the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import xarray as xr

from hybridland.model import dalec, reference


def check_dalec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hybridland.cli", "check-dalec", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_float32_within_reference_tolerances(reference_path):
    comparisons = reference.compare(reference_path)
    assert {c.precision for c in comparisons} == {"float32", "float64"}
    assert len(comparisons) == 2 * len(dalec.OUTPUTS)
    failed = [c for c in comparisons if not c.passed]
    assert not failed, reference.report(failed)
    # Two float32 implementations of the same formulas agree to about 3e-5 (README).
    worst = max(c.relative for c in comparisons if c.precision == "float32")
    assert worst < 3.3e-5


def test_cli_float64_within_1e9(reference_path):
    result = check_dalec(str(reference_path), "--x64")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 44 comparisons within tolerance" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()[1:45]]
    assert {row[1] for row in rows} == {"float64"}
    assert max(float(row[3]) for row in rows) < 1e-9


def test_cli_fails_and_names_the_output_when_a_reference_is_off(reference_path, tmp_path):
    ds = xr.open_dataset(reference_path).load()
    ds["gpp"] = ds["gpp"] * 1.001
    bad = tmp_path / "perturbed.nc"
    ds.to_netcdf(bad)
    result = check_dalec(str(bad))
    assert result.returncode == 1
    assert "gpp (float32)" in result.stderr and "gpp (float64)" in result.stderr
    assert "respiration_auto" not in result.stderr


def test_cli_missing_file_is_a_clear_error(tmp_path):
    result = check_dalec(str(tmp_path / "nope.nc"))
    assert result.returncode == 2
    assert f"no such file: {tmp_path / 'nope.nc'}" in result.stderr


def test_relative_error_metric_treats_nan_as_failure():
    assert reference.relative_error(np.array([np.nan, 1.0]), np.array([1.0, 1.0]))[1] == float(
        "inf"
    )
    assert reference.relative_error(np.array([0.0, 2.5]), np.array([0.0, 2.0])) == (0.5, 0.25)
