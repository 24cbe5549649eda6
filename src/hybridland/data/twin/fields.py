"""Seeded random streams and smooth random fields, the twin's only sources of randomness.

Each component draws from its own NumPy generator seeded with
``(seed, crc32(component name))``, so changing one component never changes another.
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy import fft as sfft

Array = np.ndarray


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator of one named component, independent of every other."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def smooth_fields(rng: np.random.Generator, shape: tuple[int, ...], length: float) -> Array:
    """Gaussian-filtered white noise, z-scored per field.

    Args:
        shape: (..., ny, nx); leading axes are independent fields.
        length: standard deviation of the Gaussian filter, in pixels.
    """
    pad = int(min(2.5 * length, 400)) + 1
    padded = (*shape[:-2], shape[-2] + 2 * pad, shape[-1] + 2 * pad)
    white = rng.standard_normal(padded)
    ky = sfft.fftfreq(padded[-2])[:, None]
    kx = sfft.rfftfreq(padded[-1])[None, :]
    kernel = np.exp(-2.0 * (np.pi * length) ** 2 * (ky**2 + kx**2))
    out = sfft.irfft2(sfft.rfft2(white, workers=-1) * kernel, s=padded[-2:], workers=-1)
    out = out[..., pad : pad + shape[-2], pad : pad + shape[-1]]
    mean = out.mean(axis=(-2, -1), keepdims=True)
    std = out.std(axis=(-2, -1), keepdims=True)
    return (out - mean) / np.where(std > 0, std, 1.0)


def smoothstep(x: Array) -> Array:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
