"""Removed channel units -> a new, smaller dense Keras model (or a masked twin of the original).

The new model is a `graph.clone.clone_graph` of the original in which only the width of producing
layers (``filters``/``units``) and channel-carrying Reshapes change.
"""
from __future__ import annotations

import numpy as np

from keras_cprune.graph.dependency import Dependencies
from keras_cprune.graph.clone import clone_graph
from keras_cprune.graph.layers import output_axes, spec_for, weight_short_name


class _Positions:
    """Kept channel positions of each tensor once ``removed`` units are gone (cached)."""

    def __init__(self, deps: Dependencies, removed: set):
        self.deps, self.removed, self._cache = deps, deps.removed_mask(removed), {}

    def tensor(self, key: int) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = self.deps.kept_positions(key, self.removed)
        return self._cache[key]


def _first_nodes(graph) -> dict:
    firsts = {}
    for node in graph.nodes:
        if not node.is_input:
            firsts.setdefault(id(node.layer), node)
    return firsts


def _slice_rules(graph, node) -> dict:
    """The node's `OpSpec` slices; a producing layer must have a weight they slice by output channel."""
    spec = spec_for(node, graph.in_shapes(node), graph.out_shapes(node))
    output_axes(node.layer, spec)
    return spec.slices


def weight_channel_units(deps: Dependencies) -> list[tuple]:
    """``(layer, weight, {axis: unit id of each position})`` for every weight with channel axes
    (output filters, input rows, BatchNorm statistics...): what pruning slices or masks."""
    graph, result = deps.graph, []
    for node in _first_nodes(graph).values():
        rules = _slice_rules(graph, node)
        if not rules or not node.inputs:
            continue
        units_in = deps.units[node.inputs[0]]
        units = {"in": units_in, "out": deps.units[node.outputs[0]],
                 "mid": np.repeat(units_in, node.attrs.get("depth_multiplier", 1))}
        for weight in node.layer.weights:
            axes = {axis: units[kind] for axis, kind in rules.get(weight_short_name(weight), {}).items()}
            if axes:
                result.append((node.layer, weight, axes))
    return result


def sliced_weights(deps: Dependencies, removed: set, mask: bool = False):
    """Yield ``(layer id, new weights)``: kept channels only, or (``mask=True``) removed ones zeroed.

    One layer at a time, so no copy of all the model's weights is ever held at once."""
    channel_axes = {id(weight): axes for _, weight, axes in weight_channel_units(deps)}
    gone = deps.removed_mask(removed)
    for node in _first_nodes(deps.graph).values():
        if not getattr(node.layer, "weights", None):
            continue
        values = []
        for weight in node.layer.weights:
            value = np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight)
            for axis, units in channel_axes.get(id(weight), {}).items():
                kept = np.flatnonzero(~gone[units])
                value = _mask_axis(value, axis, kept) if mask else np.take(value, kept, axis=axis)
            values.append(value)
        yield id(node.layer), values


def _mask_axis(value: np.ndarray, axis: int, kept: np.ndarray) -> np.ndarray:
    keep = np.zeros(value.shape[axis], dtype=bool)
    keep[kept] = True
    shape = [1] * value.ndim
    shape[axis] = -1
    return value * keep.reshape(shape)


def rebuild(model, deps: Dependencies, removed: set, *, weights: str = "slice"):
    """A copy of ``model`` without the ``removed`` channel units.

    ``weights``: ``"slice"`` copies the kept weights, ``"none"`` leaves the fresh initialization
    (train from scratch), ``"mask"`` keeps the architecture and zeroes the removed channels, so
    its outputs equal those of the sliced model.
    """
    graph = deps.graph
    positions = _Positions(deps, set() if weights == "mask" else removed)
    firsts = _first_nodes(graph)

    def configure(layer, config):
        node = firsts.get(id(layer))
        if node is not None:
            _resize_config(graph, node, config, positions)

    new_model, clones = clone_graph(model, graph, input_shape=lambda key: _shape(deps, positions, key),
                                    configure=configure)
    if weights != "none":
        for layer_id, values in sliced_weights(deps, removed, mask=weights == "mask"):
            clones[layer_id].set_weights(values)
    return new_model


def _shape(deps, positions, key) -> tuple:
    shape = deps.graph.tensors[key].shape
    kept = positions.tensor(key)
    return shape if kept is None else shape[:-1] + (len(kept),)


def _resize_config(graph, node, config: dict, positions: _Positions) -> None:
    spec = spec_for(node, graph.in_shapes(node), graph.out_shapes(node))
    width = len(positions.tensor(node.outputs[0]))
    if spec.width_key and spec.role == "produce":
        config[spec.width_key] = width
    elif node.class_name == "Reshape" and spec.role in ("pass", "flatten"):
        config["target_shape"] = tuple(config["target_shape"][:-1]) + (width,)
