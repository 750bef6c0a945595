"""Keras 3 / tf_keras model -> a small framework-neutral graph.

This is the only module that knows Keras internals (``_keras_history`` and ``_inbound_nodes``,
which both Keras 3 and tf_keras keep on symbolic tensors and layers). Nested sub-models are
flattened: their layers appear as nodes of the outer graph, wired to the outer tensors.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

from keras_cprune.errors import ModelError, PruningError, SubclassedModelError, UnbuiltModelError
from keras_cprune.graph.layers import output_axes, registered_spec, spec_for, weight_short_name


@dataclass
class Tensor:
    """A symbolic activation: ``shape`` excludes the batch axis; ``None`` marks unknown dims."""

    key: int
    shape: tuple
    dtype: str
    producer: str | None = None  # node name; None for model inputs
    consumers: list[str] = field(default_factory=list)


@dataclass
class Node:
    """One call of a layer. ``name`` is the layer name, suffixed ``#k`` for the k-th reuse."""

    name: str
    layer: Any
    class_name: str
    attrs: dict  # the hyper-parameters the formulas need (see `layer_attrs`), read off the layer
    inputs: list[int]
    outputs: list[int]

    @property
    def is_input(self) -> bool:
        return self.class_name == "InputLayer"


@dataclass
class Graph:
    """Nodes in execution (topological) order, tensors by key, model input/output keys."""

    nodes: list[Node]
    tensors: dict[int, Tensor]
    inputs: list[int]
    outputs: list[int]
    keras: Any  # the keras module the model belongs to (keras or tf_keras)
    model_name: str
    submodel_inputs: dict[int, list[int]] = field(default_factory=dict)  # id(nested model) -> keys

    def node(self, name: str) -> Node:
        return self._by_name[name]

    def __post_init__(self):
        self._by_name = {n.name: n for n in self.nodes}

    def in_shapes(self, node: Node) -> list[tuple]:
        return [self.tensors[k].shape for k in node.inputs]

    def out_shapes(self, node: Node) -> list[tuple]:
        return [self.tensors[k].shape for k in node.outputs]


def keras_module_of(model) -> Any:
    """The Keras implementation ``model`` comes from: ``keras`` (Keras 3) or ``tf_keras``."""
    module = type(model).__module__
    for candidate in ("tf_keras", "keras"):
        if module.startswith(candidate + ".") or module == candidate:
            return importlib.import_module(candidate)
    if module.startswith("tensorflow.python.keras"):
        raise ModelError(
            f"Model {getattr(model, 'name', model)!r} comes from the deprecated tensorflow.python.keras. "
            "Build it with `keras` (Keras 3) or `tf_keras` (Keras 2) instead."
        )
    return importlib.import_module("keras")


def check_model(model) -> Any:
    """Validate that ``model`` is a built Functional/Sequential model; return its keras module."""
    if not _is_keras_model(model):
        raise ModelError(
            f"Expected `model` to be a built `keras.Model` (Functional or Sequential). "
            f"Received: model={type(model).__name__} object."
        )
    keras = keras_module_of(model)
    inputs = getattr(model, "inputs", None)
    if inputs:
        return keras
    if isinstance(model, keras.Sequential):
        raise UnbuiltModelError(
            f"Sequential model {model.name!r} has no input shape yet. Start it with "
            "`keras.Input(shape=...)` or call `model.build((None, ...))` before using keras-cprune."
        )
    raise SubclassedModelError(
        f"Model {model.name!r} ({type(model).__name__}) is a subclassed keras.Model without a "
        "functional graph; keras-cprune needs the layer graph. Rewrite it as a Functional "
        "(`keras.Model(inputs, outputs)`) or Sequential model."
    )


def with_input_shape(model, input_shape=None):
    """``model``, or with free input dimensions (``keras.Input((None, None, 3))``) a copy built
    at ``input_shape`` (without batch) with the same weights. Costs, pruning and the TFLM arena
    need every size known: `ModelError` asks for ``input_shape`` when one is free."""
    keras = check_model(model)
    if len(model.inputs) != 1:
        if input_shape is not None:
            raise ModelError(f"`input_shape` fixes the input of a single-input model; model {model.name!r} has "
                             f"{len(model.inputs)} inputs. Received: input_shape={input_shape!r}.")
        return model
    declared = tuple(model.inputs[0].shape[1:])
    if input_shape is None:
        if None in declared:
            raise ModelError(f"Model {model.name!r} has free input dimensions {declared}; parameters, MACs, "
                             f"activation memory and the TFLM arena depend on them. Pass input_shape= with "
                             f"the size to cost and prune at, e.g. input_shape={_example(declared)}.")
        return model
    input_shape = tuple(input_shape)
    if len(input_shape) != len(declared) or any(d is not None and d != i for d, i in zip(declared, input_shape)) \
            or not all(isinstance(i, int) and i > 0 for i in input_shape):
        raise ModelError(f"`input_shape` must give a positive size for every input dimension of model "
                         f"{model.name!r} and agree with its fixed ones {declared}. Received: "
                         f"input_shape={input_shape!r}.")
    if input_shape == declared:
        return model
    copy = keras.models.clone_model(model, input_tensors=keras.Input(input_shape, name=model.inputs[0].name))
    copy.set_weights(model.get_weights())
    return copy


def _example(declared: tuple) -> tuple:
    return tuple(96 if d is None else d for d in declared)


def _is_keras_model(obj) -> bool:
    for name in ("keras", "tf_keras"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # tf_keras is optional for Keras 3 users
            continue
        if isinstance(obj, module.Model):
            return True
    return False


def read_graph(model, input_shape=None) -> Graph:
    """Read a built Functional or Sequential model (nested models flattened) into a `Graph`;
    ``input_shape`` (without batch) fixes free input dimensions (see `with_input_shape`)."""
    model = with_input_shape(model, input_shape)
    keras = check_model(model)
    builder = _Builder(keras)
    input_keys = [builder.new_tensor(t, producer=None) for t in model.inputs]
    for tensor, key in zip(model.inputs, input_keys):
        builder.add_node(_input_layer(tensor), [], [key])
    output_keys = builder.expand(model, input_keys)
    return Graph(builder.nodes, builder.tensors, input_keys, output_keys, keras, model.name, builder.submodel_inputs)


class _Builder:
    def __init__(self, keras):
        self.keras = keras
        self.nodes: list[Node] = []
        self.tensors: dict[int, Tensor] = {}
        self.calls: dict[str, int] = {}
        self.submodel_inputs: dict[int, list[int]] = {}

    def new_tensor(self, symbolic, producer: str | None) -> int:
        key = len(self.tensors)
        shape = tuple(None if d is None else int(d) for d in tuple(symbolic.shape)[1:])
        dtype = getattr(symbolic.dtype, "name", str(symbolic.dtype))
        self.tensors[key] = Tensor(key, shape, dtype, producer)
        return key

    def add_node(self, layer, in_keys: list[int], out_keys: list[int]) -> Node:
        count = self.calls.get(layer.name, 0)
        self.calls[layer.name] = count + 1
        name = layer.name if count == 0 else f"{layer.name}#{count}"
        node = Node(name, layer, type(layer).__name__, layer_attrs(layer), in_keys, out_keys)
        check_weights(node, [self.tensors[k].shape for k in in_keys], [self.tensors[k].shape for k in out_keys])
        for key in in_keys:
            self.tensors[key].consumers.append(name)
        for key in out_keys:
            self.tensors[key].producer = name
        self.nodes.append(node)
        return node

    def expand(self, model, input_keys: list[int]) -> list[int]:
        """Add the nodes of ``model`` whose inputs are ``input_keys``; return its output keys."""
        alias = {id(t): k for t, k in zip(model.inputs, input_keys)}
        for node in _topological_nodes(model):
            layer = _node_layer(node)
            if _is_input_node(node):
                if not any(id(t) in alias for t in _node_outputs(node)):
                    raise ModelError(f"Input layer {layer.name!r} of model {model.name!r} is not a model input.")
                continue
            in_keys = [alias[id(t)] for t in _node_inputs(node)]
            outs = _node_outputs(node)
            if isinstance(layer, self.keras.Model):
                check_model(layer)
                self.submodel_inputs[id(layer)] = in_keys
                out_keys = self.expand(layer, in_keys)
            else:
                out_keys = [self.new_tensor(t, producer=None) for t in outs]
                new = self.add_node(layer, in_keys, out_keys)
                new.attrs["array_operands"] = _has_array_operands(node)
            alias.update({id(t): k for t, k in zip(outs, out_keys)})
        return [alias[id(t)] for t in model.outputs]


_ATTRS = ("filters", "units", "kernel_size", "groups", "use_bias", "depth_multiplier", "data_format",
          "axis", "center", "scale", "target_shape", "padding", "strides", "dilation_rate", "pool_size",
          "input_mean", "reset_after")


def layer_attrs(layer) -> dict:
    """Hyper-parameters of ``layer`` read as attributes (``get_config()`` is ~100x slower); a
    layer registered with `layers.register_layer` adds its whole config, for its own formulas."""
    attrs = {name: getattr(layer, name) for name in _ATTRS if hasattr(layer, name)}
    activation = getattr(layer, "activation", None)
    if activation is not None:
        attrs["activation"] = getattr(activation, "__name__", str(activation))
    if registered_spec(type(layer)) is not None:
        attrs = {**layer.get_config(), **attrs}
    return attrs


def check_weights(node, in_shapes: list, out_shapes: list) -> None:
    """A registered layer's weights against its `OpSpec` (weights exist once it is built, so this
    runs when the graph is read): a producing layer needs a weight sliced by its output channels
    (`output_axes`), and a weight no ``slices`` entry names may not have an axis the size of
    channels that pruning can remove, or the rebuilt layer would get a weight of the old width.

    Raises:
        PruningError: naming the layer class, the weight and the ``slices`` entry to add.
    """
    spec = registered_spec(type(node.layer))
    if spec is None:
        return
    spec = spec_for(node, in_shapes, out_shapes)
    output_axes(node.layer, spec)
    sides = {"pin": (), "consume": ("in",)}.get(spec.role, ("in", "out"))
    channels = {side: {s[-1] for s in shapes if s and s[-1] is not None and s[-1] > 1}
                for side, shapes in (("in", in_shapes), ("out", out_shapes)) if side in sides}
    for weight in getattr(node.layer, "weights", ()):
        name, shape = weight_short_name(weight), tuple(weight.shape)
        if name in spec.slices:
            continue
        for axis, size in enumerate(shape):
            side = next((side for side in ("out", "in") if size in channels.get(side, ())), None)
            if side is not None:
                cls = type(node.layer).__name__
                fix = {**spec.slices, name: {axis: side}}
                raise PruningError(
                    f"Weight {name!r} of {cls} layer {node.layer.name!r} has shape {shape}, whose axis {axis} follows "
                    f"its {side}put channels ({size}), but the OpSpec registered for {cls} does not slice it: "
                    f"pruning would leave it {size} wide. Add it to `slices` in register_layer({cls}, OpSpec(...)), "
                    f"e.g. slices={fix!r} (or {{{name!r}: {{}}}} if its size only happens to equal the channels).")


def layer_from_config(layer, config: dict):
    """A new layer of ``layer``'s class from ``config``. A Keras 3 ``Lambda`` re-makes its function
    from the one already in this process, not from a file, so the load-time safe mode is off."""
    from_config = type(layer).from_config
    if "safe_mode" in inspect.signature(from_config).parameters:
        return from_config(config, safe_mode=False)
    return from_config(config)


def _has_array_operands(node) -> bool:
    """Whether a call got a non-symbolic array argument (e.g. ``x + np.ones(c)``)."""
    arguments = getattr(node, "arguments", None)  # Keras 3; tf_keras wraps such ops as TFOpLambda
    if arguments is None:
        return False
    values = list(arguments.args) + list(arguments.kwargs.values())
    return any(hasattr(v, "shape") and not hasattr(v, "_keras_history") and len(v.shape) > 0 for v in values)


def _input_layer(tensor):
    return tensor._keras_history[0]


def _node_layer(node):
    return getattr(node, "operation", None) or node.layer


def _is_input_node(node) -> bool:
    return type(_node_layer(node)).__name__ == "InputLayer"


def _node_inputs(node) -> list:
    if hasattr(node, "keras_inputs"):  # tf_keras
        return list(node.keras_inputs)
    return list(node.input_tensors)


def _node_outputs(node) -> list:
    if hasattr(node, "output_tensors") and not hasattr(node, "keras_inputs"):  # Keras 3
        return list(node.output_tensors)
    import tensorflow as tf

    return tf.nest.flatten(node.outputs)


def _producer_node(tensor):
    layer, node_index, _ = tensor._keras_history
    return layer._inbound_nodes[node_index]


def _topological_nodes(model) -> list:
    """Nodes of ``model`` reachable from its outputs, each after all of its inputs (DFS order)."""
    order, done, stack = [], set(), [(_producer_node(t), False) for t in reversed(model.outputs)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        for t in reversed(_node_inputs(node)):
            parent = _producer_node(t)
            if id(parent) not in done:
                stack.append((parent, False))
    return order
