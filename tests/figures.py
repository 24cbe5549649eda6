"""Check a figure the package wrote: a real PNG and PDF of one size, with something drawn."""

from __future__ import annotations

import re
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def pdf_inches(path: Path) -> tuple[float, float]:
    """Width and height of a one-page PDF, from its media box (72 points to the inch)."""
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", path.read_bytes())
    assert box is not None, f"{path}: no media box"
    return float(box.group(1)) / 72, float(box.group(2)) / 72


def assert_figure(stem: Path | str, inches: tuple[float, float] | None = None) -> None:
    """``<stem>.png`` and ``<stem>.pdf`` hold one figure: the PNG decodes to the PDF's size at
    the package's DPI (``inches`` when given), and it is drawn on, neither blank nor a block."""
    import matplotlib.image
    import pytest

    from hybridland.analysis.plots import DPI

    png, pdf = Path(f"{stem}.png"), Path(f"{stem}.pdf")
    assert png.read_bytes().startswith(PNG_SIGNATURE), f"{png}: not a PNG"
    pixels = matplotlib.image.imread(png)  # decodes, or raises
    width, height = pdf_inches(pdf)
    if inches is not None:
        assert (width, height) == pytest.approx(inches), pdf
    assert pixels.shape[:2] == (round(height * DPI), round(width * DPI)), png
    ink = float((pixels[..., :3] < 0.9).any(axis=-1).mean())  # share of non-white pixels
    assert 0.02 < ink < 0.9, f"{png}: {ink:.3f} of the pixels drawn on"
