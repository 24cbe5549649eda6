"""The benchmark prints stable JSON keys with finite figures (timings are not asserted)."""

from __future__ import annotations

import json
import math
import subprocess
import sys


def test_bench_json_keys():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridland.cli",
            "bench",
            "--cells",
            "640",
            "--months",
            "24",
            "--repeats",
            "7",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(result.stdout)
    assert (figures["cells"], figures["months"]) == (640, 24)
    for key in ("compile_s", "peak_rss_mb", "loss"):
        assert math.isfinite(figures[key])
    for name in ("forward", "value_and_grad", "adam_step"):
        timing = figures[name]
        assert timing["median_s"] > 0
        assert timing["pixel_months_per_s"] == 640 * 24 / timing["median_s"]


def test_bench_refuses_fewer_than_seven_repeats():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridland.cli",
            "bench",
            "--cells",
            "4",
            "--months",
            "12",
            "--repeats",
            "3",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "repeats must be at least 7, got 3" in result.stderr
