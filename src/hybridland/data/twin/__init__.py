"""The embedded twin study: a synthetic region with known truth, written as raw products.

:func:`synthesize` builds a synthetic landscape, runs DALEC993 on it with KNOWN
parameter fields and writes every input the study needs in the native resolution
and format of the real product it stands for, plus the truth. Everything is
deterministic from ``TwinConfig.seed``. The modules, bottom to top:

* :mod:`~hybridland.data.twin.config`: :class:`TwinConfig`, noise and gap levels.
* :mod:`~hybridland.data.twin.fields`: seeded random streams and smooth fields.
* :mod:`~hybridland.data.twin.grids`: product grids and covered-area means.
* :mod:`~hybridland.data.twin.landscape`: terrain, climate, land cover, forests, soil.
* :mod:`~hybridland.data.twin.weather`: calendar, CO2 and monthly forcing.
* :mod:`~hybridland.data.twin.design`: the designed TRUE parameter functions.
* :mod:`~hybridland.data.twin.truth`: predictors and the DALEC993 run on the truth grid.
* :mod:`~hybridland.data.twin.observe`: noisy, gappy observations and sites.
* :mod:`~hybridland.data.twin.files`: datasets in native formats and their writers.
* :mod:`~hybridland.data.twin.synthesis`: :func:`build_twin` and :func:`synthesize`.

The manual (every formula, grid and file) is docs/twin.md.
"""

from hybridland.data.twin.config import DEFAULT_GAPS, DEFAULT_NOISE, Noise, TwinConfig
from hybridland.data.twin.design import (
    FIXED_VALUES,
    INFLUENCE,
    Overrides,
    drivers,
    pft_weights,
    true_parameters,
)
from hybridland.data.twin.files import FILENAMES, OBS_META, truth_drivers
from hybridland.data.twin.grids import PRODUCT_GRIDS
from hybridland.data.twin.synthesis import Twin, build_twin, synthesize, twin_datasets

__all__ = [
    "DEFAULT_GAPS",
    "DEFAULT_NOISE",
    "FILENAMES",
    "FIXED_VALUES",
    "INFLUENCE",
    "OBS_META",
    "PRODUCT_GRIDS",
    "Noise",
    "Overrides",
    "Twin",
    "TwinConfig",
    "build_twin",
    "drivers",
    "pft_weights",
    "synthesize",
    "true_parameters",
    "truth_drivers",
    "twin_datasets",
]
