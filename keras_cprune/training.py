"""Gradual structured pruning during ``fit``: schedules, channel masks, `strip`, checkpoints.

A model prepared by `prune_during_training` keeps its architecture. Its removed channel units are
held at exactly zero in every weight slot they own (producer filters and biases, BatchNorm
parameters and statistics, consumers' input rows: the slots of `rebuild.sliced_weights`), so it
computes what the physically smaller model built by `strip` computes.

Persistence: the removed channels are the zeroed weights themselves, so they survive any
``model.save``; `strip` and the callback read them back from the weights. The schedule, mode and
step counter belong to the `FilterPruningStep` callback: `save_checkpoint` writes them as JSON
beside the model file (``ckpt.keras`` -> ``ckpt.pruning.json``), `load_checkpoint` reads both.
"""
from __future__ import annotations

import abc
import dataclasses
import importlib
import json
import os

import numpy as np
import tensorflow as tf

from .dependency import Dependencies, build_dependencies
from .errors import ModelFileError, PruningError
from .graph import keras_module_of, read_graph
from .pruner import PruneContext
from .rebuild import rebuild, weight_channel_units

_SCHEDULES: dict[str, type] = {}
STATE_FORMAT = "keras-cprune pruning state"
KERAS_MODULES = ("keras", "tf_keras")  # the only modules a checkpoint may name for loading


class PruningSchedule(abc.ABC):
    """When to re-plan (``prunes_at(step)``) and the fraction of each selected group's filters
    to remove then (``ratio_at(step)``). Subclasses are frozen dataclasses, registered by name."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _SCHEDULES[cls.__name__] = cls

    @abc.abstractmethod
    def prunes_at(self, step: int) -> bool:
        """Whether to re-plan which filters are removed before ``step`` runs."""

    @abc.abstractmethod
    def ratio_at(self, step: int) -> float:
        """Fraction of each selected group's filters removed when re-planning at ``step``."""

    def get_config(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> "PruningSchedule":
        return cls(**config)


def _check_ratio(name: str, value) -> None:
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise PruningError(f"`{name}` is a fraction of filters to remove and must be in [0, 1). "
                           f"Received: {name}={value!r}.")


def _check_steps(begin_step, frequency) -> None:
    if not isinstance(begin_step, int) or begin_step < 0:
        raise PruningError(f"`begin_step` must be an integer >= 0. Received: begin_step={begin_step!r}.")
    if not isinstance(frequency, int) or frequency < 1:
        raise PruningError(f"`frequency` (steps between re-planning) must be an integer >= 1. "
                           f"Received: frequency={frequency!r}.")


@dataclasses.dataclass(frozen=True)
class PolynomialDecay(PruningSchedule):
    """Ratio rising from ``initial_ratio`` to ``final_ratio`` between ``begin_step`` and ``end_step``:
    ``final + (initial - final) * (1 - progress) ** power``, re-planned every ``frequency`` steps
    from ``begin_step`` and at ``end_step`` (so the final ratio is always reached)."""

    initial_ratio: float
    final_ratio: float
    begin_step: int
    end_step: int
    power: float = 3.0
    frequency: int = 100

    def __post_init__(self):
        _check_ratio("initial_ratio", self.initial_ratio)
        _check_ratio("final_ratio", self.final_ratio)
        _check_steps(self.begin_step, self.frequency)
        if not isinstance(self.end_step, int) or self.end_step <= self.begin_step:
            raise PruningError(f"`end_step` must be an integer > begin_step={self.begin_step}. "
                               f"Received: end_step={self.end_step!r}.")
        if not isinstance(self.power, (int, float)) or self.power <= 0:
            raise PruningError(f"`power` must be > 0. Received: power={self.power!r}.")

    def prunes_at(self, step: int) -> bool:
        return self.begin_step <= step <= self.end_step and (
            (step - self.begin_step) % self.frequency == 0 or step == self.end_step)

    def ratio_at(self, step: int) -> float:
        progress = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        return self.final_ratio + (self.initial_ratio - self.final_ratio) * (1.0 - progress) ** self.power


@dataclasses.dataclass(frozen=True)
class ConstantRatio(PruningSchedule):
    """The same ``ratio`` from ``begin_step`` on, re-planned every ``frequency`` steps."""

    ratio: float
    begin_step: int = 0
    frequency: int = 100

    def __post_init__(self):
        _check_ratio("ratio", self.ratio)
        _check_steps(self.begin_step, self.frequency)

    def prunes_at(self, step: int) -> bool:
        return step >= self.begin_step and (step - self.begin_step) % self.frequency == 0

    def ratio_at(self, step: int) -> float:
        return float(self.ratio)


def serialize_schedule(schedule: PruningSchedule) -> dict:
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize_schedule(data: dict) -> PruningSchedule:
    name = data.get("class_name")
    if name not in _SCHEDULES:
        raise PruningError(f"Unknown pruning schedule {name!r}. Expected one of {sorted(_SCHEDULES)} "
                           "(define a PruningSchedule subclass before loading it).")
    return _SCHEDULES[name].from_config(data["config"])


def channel_masks(deps: Dependencies, removed: set) -> list[tuple]:
    """``(weight, 0/1 mask of the weight's shape)`` for each weight holding a ``removed`` unit."""
    masks, removed = [], np.array(sorted(removed), dtype=np.int64)
    for _, weight, axes in weight_channel_units(deps):
        mask = np.ones(tuple(weight.shape), dtype="float32")
        for axis, units in axes.items():
            shape = [1] * mask.ndim
            shape[axis] = -1
            mask = mask * ~np.isin(units, removed).reshape(shape)
        if not mask.all():
            masks.append((weight, tf.constant(mask, dtype=weight.dtype)))
    return masks


def apply_masks(masks: list[tuple]) -> None:
    """Zero the masked slots in place (also works on variables mirrored by a tf.distribute strategy)."""
    for weight, mask in masks:
        weight.assign(weight * mask)


def zeroed_units(deps: Dependencies) -> set:
    """The free channel units of prunable groups whose every weight slot is exactly zero.

    Removing them changes no output, whatever zeroed them (a `FilterPruningStep` or a reload)."""
    alive: set = set()
    for _, weight, axes in weight_channel_units(deps):
        value = np.asarray(weight.numpy())
        for axis, units in axes.items():
            nonzero = np.moveaxis(value, axis, 0).reshape(len(units), -1).any(axis=1)
            alive.update(units[nonzero].tolist())
    free = {int(u) for g in deps.groups if g.prunable for u in g.units[~g.pinned]}
    return free - alive


def prune_during_training(model, mode: str = "PA", *, schedule: PruningSchedule, importance="l1",
                          rule: str = "mean", threshold: float = 1.0, coverage: float = 0.8,
                          min_filters: int = 1, round_to: int = 1, seed: int = 0, unit: str = "step"):
    """``(masked_model, callback)``: a copy of ``model`` for masked training and the
    `FilterPruningStep` to pass to its ``fit``.

    At each step (or epoch, ``unit="epoch"``) where ``schedule`` prunes, the callback re-plans
    ``PruneContext.plan(mode, schedule.ratio_at(step), ...)`` on the current weights and zeroes
    the removed channels, and it zeroes them again after every batch so that optimizer updates
    cannot revive them. `strip` then builds the smaller dense model. ``model`` is not modified.
    """
    from .callbacks import FilterPruningStep

    options = dict(importance=importance, rule=rule, threshold=threshold, coverage=coverage,
                   min_filters=min_filters, round_to=round_to, seed=seed)
    callback = FilterPruningStep(mode, schedule, unit=unit, **options)
    context = PruneContext.of(model)
    context.plan(mode, 0.0, **options)  # fail now, not at the first pruning step, on bad arguments
    return rebuild(model, context.deps, set(), weights="slice"), callback


def strip(model):
    """The physically smaller dense model: a copy of ``model`` without its zeroed channel units
    (see `zeroed_units`). Its outputs equal the masked model's up to float rounding."""
    deps = build_dependencies(read_graph(model))
    return rebuild(model, deps, zeroed_units(deps), weights="slice")


def state_path(filepath) -> str:
    """Where the pruning state of a model saved at ``filepath`` goes: ``ckpt.keras`` -> ``ckpt.pruning.json``."""
    return os.path.splitext(os.fspath(filepath))[0] + ".pruning.json"


def save_checkpoint(model, callback, filepath) -> None:
    """``model.save(filepath)`` (masked weights, optimizer) and the callback's schedule, options
    and step counter as JSON at `state_path` (``filepath`` must end in ``.keras``)."""
    model.save(filepath)
    state = {"format": STATE_FORMAT, "keras": keras_module_of(model).__name__,
             "callback": callback.get_config(), "step": callback.step}
    with open(state_path(filepath), "w") as f:
        json.dump(state, f, indent=2)


def read_state(filepath) -> dict:
    """The pruning state JSON saved beside ``filepath``; `ModelFileError` naming the file if it is
    missing, not ours, or names a Keras module other than `KERAS_MODULES` (it is imported to load)."""
    path = state_path(filepath)
    try:
        with open(path) as f:
            state = json.load(f)
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"format is {state.get('format')!r}")
        if state.get("keras") not in KERAS_MODULES:
            raise ValueError(f"keras is {state.get('keras')!r}, expected one of {KERAS_MODULES}")
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"Cannot read the pruning state of {os.fspath(filepath)!r} at {path!r} ({exc}). "
                             "Expected the JSON written by keras_cprune.training.save_checkpoint().") from exc
    return state


def load_checkpoint(filepath, *, importance=None, **load_kwargs):
    """``(model, callback)`` saved by `save_checkpoint`, ready to resume ``fit``. Pass
    ``importance`` again if it was a callable (callables are not saved); ``load_kwargs`` go to
    ``load_model`` of the Keras that saved the model."""
    from .callbacks import FilterPruningStep

    state = read_state(filepath)
    config = state["callback"]
    if importance is not None:
        config["importance"] = importance
    elif config["importance"] is None:
        raise PruningError(f"The checkpoint {os.fspath(filepath)!r} was pruned with a callable importance, "
                           "which is not saved. Pass it again: load_checkpoint(path, importance=fn).")
    model = importlib.import_module(state["keras"]).models.load_model(filepath, **load_kwargs)
    callback = FilterPruningStep.from_config(config)
    callback.step = state["step"]
    return model, callback
