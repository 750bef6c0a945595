"""Masked training: the channel units a plan removes held at zero in every weight slot they own,
and `strip`, which rebuilds the physically smaller model from those zeros."""
from __future__ import annotations

import keras
import numpy as np

from keras_cprune.graph.dependency import Dependencies, build_dependencies
from keras_cprune.graph.reader import read_graph
from keras_cprune.pruning.rebuild import rebuild, weight_channel_units


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
            masks.append((weight, _as_tensor_of(weight, mask)))
    return masks


def _as_tensor_of(weight, mask: np.ndarray):
    """``mask`` as a tensor of ``weight``'s backend and dtype: a Keras 3 variable's (JAX, PyTorch,
    TensorFlow) through ``keras.ops``; a tf_keras variable's stays a NumPy array (TensorFlow takes it)."""
    if isinstance(weight, keras.Variable):
        return keras.ops.convert_to_tensor(mask, dtype=weight.dtype)
    return mask.astype(np.dtype(getattr(weight.dtype, "as_numpy_dtype", weight.dtype)))


def apply_masks(masks: list[tuple]) -> None:
    """Zero the masked slots in place, on any Keras 3 backend and tf_keras (also on variables
    mirrored by a tf.distribute strategy). Under JAX, read a fitting model's weights only after
    ``callback.model`` has synced them (Keras keeps them out of the variables during an epoch)."""
    for weight, mask in masks:
        if isinstance(weight, keras.Variable):
            weight.assign(keras.ops.multiply(weight, mask))
        else:
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


def strip(model):
    """The physically smaller dense model: a copy of ``model`` without its zeroed channel units.

    A channel unit whose every weight slot is exactly zero (see `zeroed_units`), e.g. held there
    by `prune_during_training`'s masks, is removed with all it couples to. ``model`` is not
    modified.

    Args:
        model: a built Functional or Sequential `keras.Model` (Keras 3 or tf_keras).

    Returns:
        A new `keras.Model` of the same class; its outputs equal ``model``'s up to float rounding.

    Example:

    ```python
    masked, step = keras_cprune.prune_during_training(model, "FA", schedule=schedule)
    masked.fit(x, y, epochs=3, callbacks=[step])
    small = keras_cprune.strip(masked)
    small.save("pruned.keras")
    ```
    """
    deps = build_dependencies(read_graph(model))
    return rebuild(model, deps, zeroed_units(deps), weights="slice")
