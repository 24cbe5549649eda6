"""Shared fixtures: the shipped reference file and its cases."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
REFERENCE = DATA / "dalec993_cases.nc"


@pytest.fixture(scope="session")
def reference_path() -> Path:
    return REFERENCE


@pytest.fixture(scope="session")
def reference_cases():
    from hybridland.model import reference

    return list(reference.cases(REFERENCE))
