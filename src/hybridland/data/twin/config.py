"""The twin's configuration: region, period, seed, sites, noise, gaps and truth overrides."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from hybridland.data.grids import UCRB_BOX, Box
from hybridland.data.twin.design import OVERRIDE_GROUPS, Overrides
from hybridland.model import parameters


class Noise(NamedTuple):
    """Observation noise: y = x exp(relative e1 - relative^2/2) + absolute e2."""

    relative: float
    absolute: float


DEFAULT_NOISE: dict[str, Noise] = {
    "lai": Noise(0.10, 0.10),
    "sif": Noise(0.15, 0.0),
    "et": Noise(0.10, 0.0),
    "nbe": Noise(0.0, 0.1),
    "ewt": Noise(0.0, 10.0),
    "biomass": Noise(0.20, 0.0),
    "som": Noise(0.30, 0.0),
    "ec_gpp": Noise(0.10, 0.2),
    "ec_reco": Noise(0.10, 0.2),
    "ec_et": Noise(0.10, 0.1),
}
"""Noise per observed quantity (units of the product)."""

DEFAULT_GAPS: dict[str, float] = {
    "lai": 0.05,
    "sif": 0.05,
    "et": 0.03,
    "nbe": 0.0,
    "ewt": 0.03,
    "biomass": 0.0,
    "som": 0.0,
    "ec": 0.10,
}
"""Random gap fraction per product (EWT: whole months; ec: site-months)."""

#: Fine (~1 km) pixels per truth cell along each axis.
FINE_PER_TRUTH = 6
#: Forcing resolution (degrees); truth cells must nest in forcing cells.
FORCING_RESOLUTION = 0.1

_CONFIG_KEYS = (
    "box",
    "years",
    "seed",
    "truth_resolution",
    "n_sites",
    "snow_threshold",
    "noise",
    "gaps",
    "write_truth_outputs",
    "overrides",
    "override_span",
)


@dataclass(frozen=True)
class TwinConfig:
    """Everything that shapes a twin region.

    Attributes:
        box: study box (degrees, cell edges); every grid is snapped outward from it.
        years: first and last calendar year (inclusive) of monthly data.
        seed: the one seed of every random component.
        truth_resolution: truth-grid spacing in degrees (must divide 0.1).
        n_sites: number of eddy-covariance sites.
        snow_threshold: monthly mean temperature (degC) below which LAI and SIF are
            missing (snow cover).
        noise: observation noise per quantity (keys of DEFAULT_NOISE).
        gaps: random gap fraction per product (keys of DEFAULT_GAPS).
        write_truth_outputs: also write noise-free model outputs on the truth grid.
        overrides: parameter -> predictor group (PFT, CLIM, SOIL, AGE) whose smooth
            random function replaces its designed dependence, or ``none`` (constant).
        override_span: fraction of an overridden parameter's log-range its random
            function spans (at most).
    """

    box: Box = UCRB_BOX
    years: tuple[int, int] = (2010, 2023)
    seed: int = 1
    truth_resolution: float = 0.05
    n_sites: int = 6
    snow_threshold: float = -2.0
    noise: Mapping[str, Noise] = field(default_factory=lambda: dict(DEFAULT_NOISE))
    gaps: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_GAPS))
    write_truth_outputs: bool = True
    overrides: Mapping[str, str] = field(default_factory=dict)
    override_span: float = 0.25

    @property
    def truth_overrides(self) -> Overrides:
        """The overrides of the designed truth, seeded by the twin's seed."""
        return Overrides(dict(self.overrides), self.override_span, self.seed)

    def __post_init__(self) -> None:
        _check_config(self)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> TwinConfig:
        """Build from plain data (e.g. YAML); unknown keys raise ValueError naming them.

        ``box`` is a mapping with west/east/south/north; ``years`` is [first, last];
        ``noise`` maps a quantity to {relative, absolute} and ``gaps`` a product to a
        fraction, both merged over the defaults.
        """
        _reject_unknown(mapping, _CONFIG_KEYS, "twin config")
        kw: dict[str, Any] = {k: v for k, v in mapping.items() if k not in ("box", "noise", "gaps")}
        if "box" in mapping:
            _reject_unknown(mapping["box"], Box._fields, "twin config box")
            kw["box"] = Box(
                **{k: float(v) for k, v in {**UCRB_BOX._asdict(), **mapping["box"]}.items()}
            )
        if "years" in mapping:
            kw["years"] = tuple(int(y) for y in mapping["years"])
        if "noise" in mapping:
            _reject_unknown(mapping["noise"], tuple(DEFAULT_NOISE), "twin config noise")
            noise = dict(DEFAULT_NOISE)
            for name, value in mapping["noise"].items():
                _reject_unknown(value, Noise._fields, f"twin config noise.{name}")
                noise[name] = Noise(**{**noise[name]._asdict(), **value})
            kw["noise"] = noise
        if "gaps" in mapping:
            _reject_unknown(mapping["gaps"], tuple(DEFAULT_GAPS), "twin config gaps")
            kw["gaps"] = {**DEFAULT_GAPS, **{k: float(v) for k, v in mapping["gaps"].items()}}
        if "overrides" in mapping:
            _reject_unknown(mapping["overrides"], parameters.NAMES, "twin config overrides")
            kw["overrides"] = {k: str(v) for k, v in mapping["overrides"].items()}
        return cls(**kw)


def _reject_unknown(mapping: Any, known: tuple[str, ...], where: str) -> None:
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
        )


def _check_config(c: TwinConfig) -> None:
    b = c.box
    if not (all(math.isfinite(v) for v in b) and b.west < b.east and b.south < b.north):
        raise ValueError(f"twin config box: need finite west < east and south < north, got {b}")
    if not (-180.0 <= b.west and b.east <= 180.0 and -80.0 <= b.south and b.north <= 80.0):
        raise ValueError(f"twin config box: {b} is outside lon [-180, 180] / lat [-80, 80]")
    if len(c.years) != 2 or c.years[0] > c.years[1] or c.years[0] < 1901:
        raise ValueError(
            f"twin config years: need [first, last] with 1901 <= first <= last, got {c.years}"
        )
    ratio = FORCING_RESOLUTION / c.truth_resolution
    if c.truth_resolution <= 0 or abs(ratio - round(ratio)) > 1e-6:
        raise ValueError(
            f"twin config truth_resolution: {c.truth_resolution} must divide {FORCING_RESOLUTION}"
        )
    if c.n_sites < 0:
        raise ValueError(f"twin config n_sites: must be >= 0, got {c.n_sites}")
    _reject_unknown(c.noise, tuple(DEFAULT_NOISE), "twin config noise")
    _reject_unknown(c.gaps, tuple(DEFAULT_GAPS), "twin config gaps")
    for name, n in c.noise.items():
        if n.relative < 0 or n.absolute < 0:
            raise ValueError(f"twin config noise.{name}: levels must be >= 0, got {n}")
    for name, g in c.gaps.items():
        if not 0.0 <= g < 1.0:
            raise ValueError(f"twin config gaps.{name}: fraction must lie in [0, 1), got {g}")
    _reject_unknown(c.overrides, parameters.NAMES, "twin config overrides")
    for name, group in c.overrides.items():
        if group not in OVERRIDE_GROUPS:
            known = ", ".join(OVERRIDE_GROUPS)
            raise ValueError(f"twin config overrides.{name}: {group!r} is not one of {known}")
    if not 0.0 < c.override_span <= 1.0:
        raise ValueError(f"twin config override_span: must lie in (0, 1], got {c.override_span}")
