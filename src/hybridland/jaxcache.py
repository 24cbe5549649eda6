"""JAX's persistent compilation cache, shared by the jobs of a workflow.

Members of one setup (and setups with the same number of predictors) compile
the same programs; with the cache only the first job pays for compilation.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

DEFAULT = Path("results/.jax_cache")


def enable(directory: Path | None = None) -> Path:
    """Turn the cache on (directory from $HYBRIDLAND_JAX_CACHE, else results/.jax_cache)."""
    path = Path(directory or os.environ.get("HYBRIDLAND_JAX_CACHE", DEFAULT)).resolve()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path
