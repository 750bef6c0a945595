"""Gradual structured pruning during ``fit``: `prune_during_training` and checkpoints (schedules in
`schedules`, channel masks and `strip` in `masks`).

A model prepared by `prune_during_training` keeps its architecture. Its removed channel units are
held at exactly zero in every weight slot they own (producer filters and biases, BatchNorm
parameters and statistics, consumers' input rows: the slots of `pruning.rebuild.sliced_weights`), so it
computes what the physically smaller model built by `strip` computes.

Persistence: the removed channels are the zeroed weights themselves, so they survive any
``model.save``; `strip` and the callback read them back from the weights. The schedule, mode and
step counter belong to the `FilterPruningStep` callback: `save_checkpoint` writes them as JSON
beside the model file (``ckpt.keras`` -> ``ckpt.pruning.json``), `load_checkpoint` reads both.
"""
from __future__ import annotations

import importlib
import json
import os

from keras_cprune.training.callbacks import FilterPruningStep
from keras_cprune.config import PruneConfig
from keras_cprune.errors import ModelFileError, PruningError
from keras_cprune.graph.reader import keras_module_of
from keras_cprune.pruning.context import PruneContext
from keras_cprune.graph.clone import copy
from keras_cprune.training.schedules import PruningSchedule

STATE_FORMAT = "keras-cprune pruning state"
KERAS_MODULES = ("keras", "tf_keras")  # the only modules a checkpoint may name for loading


def prune_during_training(model, mode: str = "PA", *, schedule: PruningSchedule, config: PruneConfig | None = None,
                          unit: str = "step", **options):
    """Prepares ``model`` for gradual structured pruning during ``fit``: a masked copy and its callback.

    At each step (or epoch, ``unit="epoch"``) where ``schedule`` prunes, the callback re-plans
    ``PruneContext.choose(mode, schedule.ratio_at(step), config)`` on the current weights and zeroes
    the removed channels, and it zeroes them again after every batch so that optimizer updates
    cannot revive them. `strip` then builds the smaller dense model. ``model`` is not modified.

    Args:
        model: a built Functional or Sequential Keras model.
        mode: "PA", "FA" or "MA" (case-insensitive).
        schedule: a `PruningSchedule` (`PolynomialDecay`, `ConstantRatio`): the ratio per step.
        config: the `PruneConfig` (defaults: `PruneConfig()`).
        unit: "step" (train batches) or "epoch": what the schedule counts.
        **options: fields of `PruneConfig`, overriding those of ``config``.

    Returns:
        ``(masked_model, callback)``: the copy to train and the `FilterPruningStep` to pass to its ``fit``.

    Raises:
        PruningError: a bad mode, schedule, unit or option, or a model with nothing to prune.

    Example:
    ```python
    masked, step = prune_during_training(model, "FA", schedule=PolynomialDecay(0.0, 0.5, 0, 1000))
    masked.fit(x, y, callbacks=[step])
    small = strip(masked)
    ```
    """
    callback = FilterPruningStep(mode, schedule, config=config, unit=unit, **options)
    context = PruneContext.of(model)
    context.choose(mode, 0.0, callback.config)  # fail now, not at the first pruning step (e.g. an importance callable)
    return copy(model, context.graph), callback


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
                             "Expected the JSON written by keras_cprune.training.workflow.save_checkpoint().") from exc
    return state


def load_checkpoint(filepath, *, importance=None, **load_kwargs):
    """``(model, callback)`` saved by `save_checkpoint`, ready to resume ``fit``. Pass
    ``importance`` again if it was a callable (callables are not saved); ``load_kwargs`` go to
    ``load_model`` of the Keras that saved the model."""
    state = read_state(filepath)
    config = state["callback"]
    options = config["config"]
    if importance is not None:
        options["importance"] = importance
    elif options["importance"] is None:
        raise PruningError(f"The checkpoint {os.fspath(filepath)!r} was pruned with a callable importance, "
                           "which is not saved. Pass it again: load_checkpoint(path, importance=fn).")
    model = importlib.import_module(state["keras"]).models.load_model(filepath, **load_kwargs)
    callback = FilterPruningStep.from_config(config)
    callback.step = state["step"]
    return model, callback
