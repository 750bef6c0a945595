"""Filter importance criteria, scored per channel unit of a group (higher = keep).

Each producing layer scores its output channels; scores are divided by that layer's mean so
layers of different scale weigh alike, then averaged over the layers that share a unit.
"""
from __future__ import annotations

import numpy as np

from keras_cprune.config import check_importance
from keras_cprune.graph.dependency import Dependencies, Group
from keras_cprune.errors import PruningError
from keras_cprune.graph.layers import output_axes, spec_for, weight_short_name

def _kernel_scores(layer, spec, norm: str) -> np.ndarray:
    """Per-output-channel L1 or L2 norm of the layer's kernel: of the weights ``spec.slices`` give an
    output axis, the one with the most dimensions (Conv: axis -1, Conv*Transpose: -2, SeparableConv:
    the pointwise kernel, a registered layer: whichever weight its slices name)."""
    axes = output_axes(layer, spec)
    if not axes:
        raise PruningError(f"Layer {layer.name!r} has no kernel to score; use importance='random' or a callable.")
    named = [(w, axes.get(weight_short_name(w))) for w in layer.weights]
    weight, axis = max(((w, a) for w, a in named if a is not None), key=lambda kernel: len(kernel[0].shape))
    value = np.asarray(weight.numpy())
    flat = np.moveaxis(value, axis, -1).reshape(-1, value.shape[axis])
    return np.abs(flat).sum(0) if norm == "l1" else np.sqrt((flat ** 2).sum(0))


def _gamma_scores(layer) -> np.ndarray | None:
    for weight in layer.weights:
        if weight_short_name(weight) == "gamma":
            return np.abs(np.asarray(weight.numpy()))
    return None


def unit_scores(deps: Dependencies, group: Group, criterion, rng: np.random.Generator) -> np.ndarray:
    """Importance of each unit of ``group`` (aligned with ``group.units``)."""
    check_importance(criterion)
    if criterion == "random":
        return rng.random(len(group.units))
    graph = deps.graph
    scorers = [graph.node(n) for n in group.producers]
    if criterion == "bn_gamma":
        bns = [graph.node(n) for n in group.layers if graph.node(n).class_name == "BatchNormalization"]
        scorers = bns or scorers  # no BatchNorm in the group: fall back to the kernels' L1 norm
    total, count = np.zeros(len(group.units)), np.zeros(len(group.units))
    for node in scorers:
        scores = _score(node.layer, criterion, spec_for(node, graph.in_shapes(node), graph.out_shapes(node)))
        index = np.searchsorted(group.units, deps.units[node.outputs[0]])
        inside = (index < len(group.units)) & (group.units[np.minimum(index, len(group.units) - 1)] == deps.units[node.outputs[0]])
        mean = scores.mean() or 1.0
        np.add.at(total, index[inside], scores[inside] / mean)
        np.add.at(count, index[inside], 1)
    return total / np.maximum(count, 1)


def _score(layer, criterion, spec) -> np.ndarray:
    if callable(criterion):
        scores = np.asarray(criterion(layer), dtype=np.float64)
        channels = layer.output.shape[-1]
        if scores.shape != (channels,):
            raise PruningError(f"The importance callable returned shape {scores.shape} for layer {layer.name!r}; "
                               f"expected one score per output channel: shape ({channels},).")
        return scores
    if criterion == "bn_gamma":
        gamma = _gamma_scores(layer)
        if gamma is not None:
            return gamma
        criterion = "l1"
    return _kernel_scores(layer, spec, criterion)
