"""Shared fixtures (the shipped reference file and its cases), the session-wide JAX
compilation cache, and the `slow` marker of the workflow and Slurm tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
REFERENCE = DATA / "dalec993_cases.nc"
# Modules whose tests run whole Snakemake workflows (minutes each) are marked `slow`, as are the
# tests that train or benchmark in a child process (tests/test_train.py, tests/test_bench.py).
# Slow tests are left out of a plain `python -m pytest` unless $CI is set (as .ci/run does) or
# a `-m` expression chooses them (`python -m pytest -m slow`, or `-m "slow or not slow"`).
SLOW_MODULES = ("test_workflow.py", "test_slurm.py")


def pytest_configure(config: pytest.Config) -> None:
    """One persistent compilation cache for the whole session and the workflows it runs
    (their jobs read $HYBRIDLAND_JAX_CACHE), so a program compiled once is reused."""
    config.addinivalue_line(
        "markers", "slow: runs a whole Snakemake workflow, or trains in a child process"
    )
    cache = Path(config.rootpath) / ".jax_cache_tests"
    os.environ.setdefault("HYBRIDLAND_JAX_CACHE", str(cache))
    from hybridland import jaxcache

    jaxcache.enable()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow and not os.environ.get("CI") and not config.option.markexpr:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]


def pytest_report_header(config: pytest.Config) -> str | None:
    if not os.environ.get("CI") and not config.option.markexpr:
        return "slow workflow and Slurm tests left out (set CI=1 or pass -m to run them)"
    return None


@pytest.fixture(scope="session")
def reference_path() -> Path:
    return REFERENCE


@pytest.fixture(scope="session")
def reference_cases():
    from hybridland.model import reference

    return list(reference.cases(REFERENCE))
