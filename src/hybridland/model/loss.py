"""The training loss: weighted, masked errors of DALEC outputs against observations.

Arrays are time-major, (time, *cells). The last cell axis holds the slots of a
patch: patch-level (coarse) terms compare the slot mean of the masked model
with the slot mean of the masked observation; any leading cell axes (several
patches in one batch) are summed over. Which terms enter, and their weights,
are data (:class:`LossConfig`): a weight of 0 or an absent key switches a term
off, and the model then does not even stack the outputs it would need.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal, NamedTuple

import jax.numpy as jnp
from jax import Array

from hybridland.model import dalec, network, targets
from hybridland.model.dalec import Climate, Met, Params
from hybridland.model.targets import TERMS

Reduction = Literal["sum", "mean"]


class Observation(NamedTuple):
    """Observed values and weights, each (time, *cells); weight 0 where missing.

    Values must be finite everywhere (fill missing values with 0). Static
    observations (soil carbon) are read at the first step.
    """

    value: Array
    mask: Array


# Terms of spec 10: the targets (:data:`hybridland.model.targets.TERMS`) and the constraints.
CONSTRAINTS = ("violation", "edc")

# Weights of the published global training (spec 10).
PUBLISHED_WEIGHTS: dict[str, float] = {
    "sif": 400.0,
    "lai": 10.0,
    "biomass": 5e-5,
    "som": 3e-6,
    "nbe": 3000.0,
    "nbe_annual": 3000.0 * 3.46,
    "fire": 1000.0,
    "ewt": 0.2,
    "vod": 0.0,
    "gpp_ec": 100.0,
    "reco_ec": 100.0,
    "et_ec": 100.0,
    "et": 1.0,
    "violation": 400.0,
    "edc": 10.0,
}

EDC_POOLS = ("labile", "foliar", "root", "wood", "litter", "som")
EDC_FLUXES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "labile": (
        ("labile_production",),
        ("labile_release", "labile_fire_combust", "labile_fire_transfer"),
    ),
    "foliar": (
        ("leaf_production", "labile_release"),
        ("leaf_litter", "foliar_fire_transfer", "foliar_fire_combust"),
    ),
    "root": (("root_production",), ("root_litter", "root_fire_combust", "root_fire_transfer")),
    "wood": (("wood_production",), ("wood_litter", "wood_fire_combust", "wood_fire_transfer")),
    "litter": (
        (
            "leaf_litter",
            "root_litter",
            "labile_fire_transfer",
            "foliar_fire_transfer",
            "root_fire_transfer",
        ),
        (
            "respiration_hetero_litter",
            "litter_to_som",
            "litter_fire_combust",
            "litter_fire_transfer",
        ),
    ),
    "som": (
        ("wood_litter", "litter_to_som", "wood_fire_transfer", "litter_fire_transfer"),
        ("respiration_hetero_som", "som_fire_combust"),
    ),
}
EDC_EPS = 1e-3


class LossConfig(NamedTuple):
    """Which terms enter the loss and how (hashable, so it can be a static argument).

    weights: term name -> weight, names from TERMS and CONSTRAINTS.
    reduction: "sum" adds squared errors (the published code); "mean" divides
        each term by its total mask weight (a masked mean-squared error).
    coarse_min_valid: a patch-level term counts at a time only where at least
        this fraction of the patch's slots is observed (0 reproduces the
        published code, which weights by the fraction instead).
    steps_per_year: length of the blocks of annual terms and of the EDC.
    """

    weights: tuple[tuple[str, float], ...]
    reduction: Reduction = "mean"
    coarse_min_valid: float = 0.8
    steps_per_year: int = targets.STEPS_PER_YEAR

    @classmethod
    def from_mapping(cls, weights: Mapping[str, float], **options) -> LossConfig:
        unknown = sorted(set(weights) - set(TERMS) - set(CONSTRAINTS))
        if unknown:
            known = ", ".join(list(TERMS) + list(CONSTRAINTS))
            raise ValueError(f"unknown loss terms {unknown}; known terms: {known}")
        bad = {k: v for k, v in weights.items() if not (math.isfinite(v) and v >= 0)}
        if bad:
            raise ValueError(f"loss weights must be finite and >= 0, got {bad}")
        config = cls(tuple(sorted((k, float(v)) for k, v in weights.items() if v > 0)), **options)
        if config.reduction not in ("sum", "mean"):
            raise ValueError(f"loss reduction must be 'sum' or 'mean', got {config.reduction!r}")
        if not 0.0 <= config.coarse_min_valid <= 1.0:
            raise ValueError(f"coarse_min_valid must lie in [0, 1], got {config.coarse_min_valid}")
        return config

    @classmethod
    def from_config(cls, section: Mapping[str, object]) -> LossConfig:
        """From the config's ``loss`` section: ``weights`` plus the other options."""
        return cls.from_mapping(
            section["weights"], **{k: v for k, v in section.items() if k != "weights"}
        )

    @property
    def active(self) -> dict[str, float]:
        return dict(self.weights)

    def observed(self) -> tuple[str, ...]:
        """Observation names the active terms need."""
        return tuple(sorted({targets.observed(t) for t in self.active if t in TERMS}))

    def outputs(self) -> tuple[str, ...]:
        """DALEC outputs to stack over time for the active terms."""
        names = {o for t in self.active if t in TERMS for o in TERMS[t].outputs}
        if "violation" in self.active:
            names.add("violation")
        if "edc" in self.active:
            names.update(f"next_{p}_pool" for p in EDC_POOLS)
            names.add("lai")
        return tuple(sorted(names))

    def totals(self) -> tuple[str, ...]:
        """DALEC outputs to sum over time in the scan carry (for the EDC)."""
        if "edc" not in self.active:
            return ()
        return tuple(sorted({f for ins, outs in EDC_FLUXES.values() for f in ins + outs}))


def _masked_total(sq: Array, weight: Array, reduction: Reduction) -> Array:
    total, n = jnp.sum(sq), jnp.sum(weight)
    return total if reduction == "sum" else total / jnp.maximum(n, 1e-12)


def cell_error(model: Array, obs: Observation, reduction: Reduction) -> Array:
    """Masked squared error summed over cells and steps."""
    return _masked_total(obs.mask * (model - obs.value) ** 2, obs.mask, reduction)


def patch_error(model: Array, obs: Observation, config: LossConfig) -> Array:
    """Squared error of slot means of masked model and observation, weighted by the valid
    fraction."""
    valid = jnp.mean(obs.mask, axis=-1)
    gap = jnp.mean(obs.mask * model, axis=-1) - jnp.mean(obs.mask * obs.value, axis=-1)
    weight = valid * (valid >= config.coarse_min_valid)
    return _masked_total(gap**2 * weight, weight, config.reduction)


def term_error(name: str, out: Mapping[str, Array], obs: Observation, config: LossConfig) -> Array:
    model = targets.model_quantity(name, out, obs.mask)
    model, value, mask = targets.on_timescale(
        name, model, obs.value, obs.mask, config.steps_per_year
    )
    obs = Observation(value, mask)
    if TERMS[name].aggregation == "patch":
        return patch_error(model, obs, config)
    return cell_error(model, obs, config.reduction)


def edc_penalty(
    out: Mapping[str, Array], totals: Mapping[str, Array], pools0: dalec.Pools, steps_per_year: int
) -> Array:
    """Per-cell EDC: squared log2 distance of each pool from steady growth (spec 10)."""
    penalty = 0.0
    for i, pool in enumerate(EDC_POOLS):
        inflow_names, outflow_names = EDC_FLUXES[pool]
        inflow = sum(totals[f] for f in inflow_names)
        outflow = sum(totals[f] for f in outflow_names)
        january = jnp.mean(out[f"next_{pool}_pool"][steps_per_year - 1 :: steps_per_year], axis=0)
        ratio = inflow / jnp.maximum(outflow, EDC_EPS) * january / pools0[i]
        penalty = penalty + (jnp.abs(jnp.log(ratio + EDC_EPS)) / jnp.log(2.0)) ** 2
    return penalty


def loss_terms(
    params: Params,
    met: Met,
    climate: Climate,
    observations: Mapping[str, Observation],
    config: LossConfig,
    **dynamics,
) -> dict[str, Array]:
    """Unweighted value of every active term for one batch of cells.

    ``dynamics``: time-varying parameters and hooks, as :func:`hybridland.model.dalec.simulate`
    takes them (``dynamic``, ``hooks``, ``hook_inputs``).
    """
    run = dalec.simulate(
        params, met, climate, outputs=config.outputs(), totals=config.totals(), **dynamics
    )
    out = run.outputs
    terms = {
        name: term_error(name, out, observations[targets.observed(name)], config)
        for name in config.active
        if name in TERMS
    }
    if "violation" in config.active:
        v = out["violation"]
        terms["violation"] = jnp.sum(v) if config.reduction == "sum" else jnp.mean(v)
    if "edc" in config.active:
        edc = edc_penalty(out, run.totals, dalec.initial_pools(params), config.steps_per_year)
        lai_mask = observations["lai"].mask[0] if "lai" in observations else jnp.ones_like(edc)
        terms["edc"] = _masked_total(edc * lai_mask, lai_mask, config.reduction)
    return terms


def total_loss(
    params: Params,
    met: Met,
    climate: Climate,
    observations: Mapping[str, Observation],
    config: LossConfig,
    **dynamics,
) -> Array:
    """Weighted sum of the active terms (``dynamics`` as :func:`loss_terms`)."""
    terms = loss_terms(params, met, climate, observations, config, **dynamics)
    return sum(config.active[name] * value for name, value in terms.items())


class Batch(NamedTuple):
    """One minibatch of cells: network inputs, forcing and observations."""

    features: Array  # (*cells, n_features), standardised
    lat_feature: Array  # (*cells,), standardised LAT_SIGMOID
    met: Met  # each (time, *cells)
    climate: Climate  # each (*cells)
    observations: dict[str, Observation]  # each (time, *cells)


def network_loss(net: network.Network, batch: Batch, config: LossConfig) -> Array:
    """Loss of a batch as a function of the network weights."""
    params = network.physical_parameters(net, batch.features, batch.lat_feature)
    return total_loss(params, batch.met, batch.climate, batch.observations, config)


def group_sparsity(w: Array, groups: Array) -> Array:
    """Group lasso of a first layer's input rows: the sum over groups of sqrt(group size) times
    the Frobenius norm of the group's rows.

    ``w`` is (n_in, n_out); ``groups`` is (n_groups, n_in), 1 where a row belongs to a group. Rows
    of no group (zero padding) and empty groups add nothing, and their gradient is exactly 0.
    """
    squares = groups @ jnp.sum(w**2, axis=1)
    scaled = jnp.sum(groups, axis=1) * squares
    positive = scaled > 0
    return jnp.sum(jnp.where(positive, jnp.sqrt(jnp.where(positive, scaled, 1.0)), 0.0))


def check_observations(observations: Mapping[str, Observation], config: LossConfig) -> None:
    """Raise before any computation when an active term lacks its observation."""
    missing = [name for name in config.observed() if name not in observations]
    if missing:
        raise ValueError(
            f"loss terms need observations {missing} that the batch does not have; "
            "set their weights to 0 to switch them off"
        )
