"""Copies of a Keras model, made with the public ``clone_model(model, clone_function=...)`` of its
own Keras (3 or tf_keras): Sequential stays Sequential, layer names are kept, nested models are
cloned at the reader's input shapes. Pruning (`pruning.rebuild`) changes layer configs on the way;
predicting (`deploy`) converts a plain `copy`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from keras_cprune.graph.reader import Graph, layer_from_config


def clone_graph(model, graph: Graph, *, input_shape: Callable[[int], tuple] | None = None,
                configure: Callable[[object, dict], None] | None = None) -> tuple:
    """A new, freshly initialized ``model``: ``(new model, {id(old layer): its clone})``.

    Args:
        model: the model ``graph`` was read from.
        graph: its `Graph`.
        input_shape: the shape (without batch) of the input tensor with a graph key; default: the graph's.
        configure: ``configure(layer, config)`` may change a layer's ``get_config()`` before its clone is made.
    """
    keras = graph.keras
    shape_of = input_shape or (lambda key: graph.tensors[key].shape)
    clones: dict[int, object] = {}

    def inputs_for(sub, keys):
        tensors = [keras.Input(batch_shape=(None,) + tuple(shape_of(k)), dtype=graph.tensors[k].dtype,
                               name=t._keras_history[0].name) for t, k in zip(sub.inputs, keys)]
        return tensors[0] if len(tensors) == 1 else tensors

    def clone_layer(layer):
        if isinstance(layer, keras.Model):
            return keras.models.clone_model(layer, input_tensors=inputs_for(layer, graph.submodel_inputs[id(layer)]),
                                            clone_function=clone_layer)
        config = layer.get_config()
        if configure is not None:
            configure(layer, config)
        clones[id(layer)] = layer_from_config(layer, config)
        return clones[id(layer)]

    top_inputs = None if isinstance(model, keras.Sequential) else inputs_for(model, graph.inputs)
    return keras.models.clone_model(model, input_tensors=top_inputs, clone_function=clone_layer), clones


def copy(model, graph: Graph):
    """A copy of ``model`` with the same weights, built at ``graph``'s input shapes."""
    new_model, clones = clone_graph(model, graph)
    for node in graph.nodes:
        clone = clones.get(id(node.layer))
        if clone is not None and getattr(node.layer, "weights", None):
            clone.set_weights(node.layer.get_weights())
    return new_model


def as_trained(model):
    """``model`` (a copy of the user's) with each all-zero bias and BatchNorm offset (beta, or the
    moving mean without beta) set to 1e-3, as training leaves them (the converter drops an all-zero
    Dense or transposed-conv bias, and the ADD of a BatchNorm offset of zero)."""
    for layer in model.layers:
        kind = type(layer).__name__
        bias = getattr(layer, "bias", None) if kind in ("Dense", "Conv2DTranspose") else None
        if kind == "BatchNormalization" and not np.any(layer.moving_mean.numpy()):
            bias = layer.beta if layer.beta is not None else layer.moving_mean
        if bias is not None and not np.any(bias.numpy()):
            bias.assign(np.full(tuple(bias.shape), 1e-3, "float32"))
    return model
