"""The training loop's optimiser (Adam on a learning-rate schedule) and its restart rule.

``constant`` is the published Adam at a fixed learning rate. ``warmup_cosine``
rises linearly from 0 to the learning rate over ``warmup_epochs`` and then
decays along a cosine to ``final_fraction`` of it at the last epoch.
``schedule_free`` is optax's schedule-free AdamW (Defazio et al. 2024, "The Road
Less Scheduled"): no decay, a linear warmup over ``warmup_epochs``, and the
network that is evaluated, kept and saved is the optimiser's running average of
the iterates (:func:`evaluated_network`), not the last iterate.

A member whose training loss after ``after_epochs`` epochs exceeds ``factor``
times the lowest of the members trained beside it under the same label (a
setup's members, trained in one program) has settled in a poor minimum: it
starts again from a new key derived from its seed (docs/training.md,
"Stalled members"). A member trained alone is never restarted by this rule.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

import jax
import optax

ScheduleKind = Literal["constant", "warmup_cosine", "schedule_free"]


@dataclass(frozen=True)
class Schedule:
    kind: ScheduleKind = "constant"
    warmup_epochs: int = 0
    final_fraction: float = 1.0  # learning rate at the last step / peak (warmup_cosine)

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> Schedule:
        """From ``training.schedule`` (absent: constant)."""
        schedule = cls(**(section or {}))
        kinds = get_args(ScheduleKind)
        if schedule.kind not in kinds:
            raise ValueError(
                f"training.schedule.kind must be one of {', '.join(kinds)}, got {schedule.kind!r}"
            )
        return schedule


@dataclass(frozen=True)
class RestartStalled:
    after_epochs: int = 0  # 0: the rule is off
    factor: float = 2.0

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> RestartStalled:
        """From ``training.restart_stalled`` (absent: off)."""
        return cls(**(section or {}))


class _Options(Protocol):
    learning_rate: float
    epochs: int
    schedule: Schedule


def make_optimiser(options: _Options, steps_per_epoch: int) -> optax.GradientTransformation:
    """Adam on the options' schedule; ``steps_per_epoch`` Adam steps make one epoch.

    Equal options give the same object, so a program built on it (``train.make_epoch``) is
    traced and compiled once per process.
    """
    return _adam(options.schedule, options.learning_rate, options.epochs, steps_per_epoch)


@functools.lru_cache(maxsize=16)
def _adam(
    schedule: Schedule, peak: float, epochs: int, steps_per_epoch: int
) -> optax.GradientTransformation:
    if schedule.kind == "constant":
        return optax.adam(peak)  # a float, as published: the same trajectory bit for bit
    total = epochs * steps_per_epoch
    warmup = min(schedule.warmup_epochs * steps_per_epoch, total - 1)
    if schedule.kind == "schedule_free":
        return optax.contrib.schedule_free_adamw(peak, warmup_steps=warmup or None)
    return optax.adam(
        optax.warmup_cosine_decay_schedule(
            0.0, peak, warmup, total, end_value=peak * schedule.final_fraction
        )
    )


def evaluated_network(schedule: Schedule, opt_state: Any, net: Any) -> Any:
    """The networks (stacked over a leading member axis) that training evaluates and keeps:
    ``net`` itself, or under ``schedule_free`` the average of the iterates that the
    optimiser state holds beside them."""
    if schedule.kind != "schedule_free":
        return net
    return jax.vmap(optax.contrib.schedule_free_eval_params)(opt_state, net)


def stalled_runs(
    histories: Sequence[Sequence[tuple[float, float]]], labels: Sequence[str], rule: RestartStalled
) -> list[int]:
    """Indices of the runs whose training loss at epoch ``rule.after_epochs``, just reached,
    exceeds ``rule.factor`` times the lowest at that epoch among the runs with their label.

    ``histories`` holds each run's (train, dev) loss per epoch.
    """
    at = rule.after_epochs - 1
    if at < 0:
        return []
    best: dict[str, float] = {}
    for history, label in zip(histories, labels):
        if len(history) > at:
            best[label] = min(best.get(label, math.inf), history[at][0])
    return [
        i
        for i, (history, label) in enumerate(zip(histories, labels))
        if len(history) == at + 1 and history[at][0] > rule.factor * best[label]
    ]
