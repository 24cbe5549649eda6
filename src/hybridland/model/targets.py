"""The training targets: what each observation is compared with, and how (spec 10).

One table read by the loss (:mod:`hybridland.model.loss`) and by the evaluation
(:mod:`hybridland.training.evaluate`), so both compare the same quantities. Per
target: the DALEC outputs whose sum is its model counterpart, the aggregation
(per cell, or the mean over a patch's cells), the timescale (every step, means
over blocks of ``steps_per_year`` steps, or static: the time mean against the
first observed step) and whether the model is taken as an anomaly from its mean
over the observed steps (the EWT). :data:`TERMS` is keyed by loss term: the
driver's targets (:data:`hybridland.contract.TARGETS`, where they are read from)
and the loss-only terms. The functions work on NumPy and JAX arrays alike,
time-major (time, *cells).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

Aggregation = Literal["cell", "patch"]
Timescale = Literal["step", "annual", "static"]
ANOMALY_EPS = 1e-3  # added to the count of observed steps in the anomaly's mean
STEPS_PER_YEAR = 12  # monthly steps: the blocks of annual targets


class Term(NamedTuple):
    """How one loss term compares the model with its observation."""

    outputs: tuple[str, ...]  # DALEC outputs summed into the model counterpart
    aggregation: Aggregation
    timescale: Timescale
    anomaly: bool = False  # model minus its mean over the observed steps
    observed: str | None = None  # observation name, when not the target's own


_BIOMASS = tuple(f"next_{p}_pool" for p in ("labile", "foliar", "root", "wood"))

TERMS: dict[str, Term] = {
    "sif": Term(("SIF",), "cell", "step"),
    "lai": Term(("lai",), "cell", "step"),
    "et": Term(("ET",), "cell", "step"),
    "biomass": Term(_BIOMASS, "cell", "annual"),
    "som": Term(("next_som_pool",), "cell", "static"),
    "nbe": Term(("nbe",), "patch", "step"),
    "nbe_annual": Term(("nbe",), "patch", "annual", observed="nbe"),
    "fire": Term(("total_fire_combust",), "patch", "step"),
    "ewt": Term(("next_water_pool",), "patch", "step", anomaly=True),
    "vod": Term(("vod",), "cell", "annual"),
    "gpp_ec": Term(("gpp",), "cell", "step"),
    "reco_ec": Term(("gpp", "nee"), "cell", "step"),
    "et_ec": Term(("ET",), "cell", "step"),
}
# Targets the evaluation scores, in the order of its tables.
EVALUATED = ("lai", "sif", "et", "biomass", "som", "nbe", "ewt", "gpp_ec", "reco_ec", "et_ec")


def observed(name: str) -> str:
    """The observation target ``name`` is compared with."""
    return TERMS[name].observed or name


def model_quantity(name: str, out: Mapping[str, Any], mask: Any) -> Any:
    """The model counterpart of target ``name``, (time, *cells); ``mask`` is its observation's."""
    target = TERMS[name]
    value = out[target.outputs[0]]
    for other in target.outputs[1:]:
        value = value + out[other]
    if target.anomaly:
        value = value - (mask * value).sum(axis=0) / (mask.sum(axis=0) + ANOMALY_EPS)
    return value


def annual(x: Any, steps_per_year: int) -> Any:
    """Means over consecutive blocks of ``steps_per_year`` steps (a partial last block is
    dropped)."""
    n = x.shape[0] // steps_per_year
    return x[: n * steps_per_year].reshape(n, steps_per_year, *x.shape[1:]).mean(axis=1)


def annual_mask(mask: Any, steps_per_year: int) -> Any:
    """A year counts only when every step is observed: product of the step masks."""
    n = mask.shape[0] // steps_per_year
    return mask[: n * steps_per_year].reshape(n, steps_per_year, *mask.shape[1:]).prod(axis=1)


def on_timescale(
    name: str, model: Any, value: Any, mask: Any, steps_per_year: int
) -> tuple[Any, Any, Any]:
    """Model, observed value and mask on the target's timescale: (time or year, *cells), or
    (*cells)."""
    timescale = TERMS[name].timescale
    if timescale == "annual":
        return (
            annual(model, steps_per_year),
            annual(value, steps_per_year),
            annual_mask(mask, steps_per_year),
        )
    if timescale == "static":
        return model.mean(axis=0), value[0], mask[0]
    return model, value, mask
