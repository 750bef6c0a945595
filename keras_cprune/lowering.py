"""Lower a Keras graph to the operators the TFLite converter emits for its int8 model.

`lower` walks the Keras graph: int8 input/output, BatchNorm folded into the preceding conv,
ReLU/ReLU6 fused into conv/dense/add/..., Flatten as SHAPE-STRIDED_SLICE-PACK-RESHAPE, global
average pooling as MEAN, SeparableConv as DEPTHWISE + CONV, the Conv1D family as EXPAND_DIMS,
the 2-D op and RESHAPE, an n-way Add as a chain of binary ADDs, an all-zero Dense bias dropped
unless ``assume_trained``. `micro_graph` puts the ops in the converter's order (a `Schedule`)
into the `MicroGraph` that tflm_export's planner replays. Layers without a known lowering are
listed as approximated, never fail.
"""
from __future__ import annotations


import numpy as np
from tflm_export.micrograph import MicroGraph, OpSpec, TensorSpec

from .graph import Graph
from .ops import spec_for

_NO_OP = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
          "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity"}
_FUSES_ACTIVATION = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL",
                     "MAX_POOL_2D", "AVERAGE_POOL_2D"}
_ACTIVATION_OPS = {"sigmoid": ["LOGISTIC"], "tanh": ["TANH"], "hard_swish": ["HARD_SWISH"],
                   "hard_silu": ["HARD_SWISH"], "swish": ["LOGISTIC", "MUL"], "silu": ["LOGISTIC", "MUL"],
                   "softmax": ["SOFTMAX"], "relu": ["RELU"], "relu6": ["RELU6"], "leaky_relu": ["LEAKY_RELU"]}
_SIMPLE = {"MaxPooling2D": "MAX_POOL_2D", "AveragePooling2D": "AVERAGE_POOL_2D", "Add": "ADD",
           "Subtract": "SUB", "Multiply": "MUL", "Concatenate": "CONCATENATION", "Softmax": "SOFTMAX",
           "Maximum": "MAXIMUM", "Minimum": "MINIMUM", "LeakyReLU": "LEAKY_RELU"}


class _Lowering:
    def __init__(self, graph: Graph, shapes: dict, assume_trained: bool):
        self.graph, self.shapes, self.assume_trained = graph, shapes, assume_trained
        self.consts: list[TensorSpec] = []
        self.acts: list[tuple] = []  # (TensorSpec, graph key or None)
        self.ops: list[tuple] = []  # (op name, inputs, outputs, node name) with ("c", i) / ("a", i) refs
        self.of_key: dict[int, tuple] = {}
        self.shared: dict = {}
        self.expanded: dict = {}  # squeezed 1-D activation -> the 4-D tensor it was reshaped from
        self.approximated: list[str] = []

    def shape(self, key: int) -> tuple:
        return (1,) + tuple(self.shapes.get(key, self.graph.tensors[key].shape))

    def const(self, shape, itemsize=1, quant=0, share=None) -> tuple:
        if share is not None and share in self.shared:
            return self.shared[share]
        self.consts.append(TensorSpec(tuple(shape), itemsize, True, quant))
        ref = ("c", len(self.consts) - 1)
        if share is not None:
            self.shared[share] = ref
        return ref

    def act(self, shape, key=None, itemsize=1, quant=1) -> tuple:
        self.acts.append((TensorSpec(tuple(shape), itemsize, False, quant), key))
        return ("a", len(self.acts) - 1)

    def op(self, name, inputs, out_shape, node, key=None, itemsize=1, quant=1) -> tuple:
        out = self.act(out_shape, key, itemsize, quant)
        self.ops.append((name, tuple(inputs), (out,), node))
        return out

    def weighted(self, name, node, x, filt_shape, channels, bias=True, shape=None) -> tuple:
        filt = self.const(filt_shape, 1, channels)
        inputs = [x, filt] + ([self.const((channels,), 4, channels)] if bias else [("none", -1)])
        return self.op(name, inputs, shape or self.shape(node.outputs[0]), node.name)


def _keeps_bias(layer, assume_trained: bool) -> bool:
    """The converter drops an all-zero Dense or transposed-conv bias; a trained one never is."""
    bias = getattr(layer, "bias", None)
    if bias is None or assume_trained:
        return bias is not None
    return bool(np.any(np.asarray(bias.numpy() if hasattr(bias, "numpy") else bias)))


def _lower_node(low: _Lowering, node, fused: set) -> tuple | None:
    """Emit the TFLite ops of ``node``; return its output ref (None: alias of its input)."""
    g, a = low.graph, node.attrs
    x = low.of_key.get(node.inputs[0]) if node.inputs else None
    cls = node.class_name
    in_shape = low.shape(node.inputs[0]) if node.inputs else ()
    out_shape = low.shape(node.outputs[0])
    role = spec_for(node, g.in_shapes(node), g.out_shapes(node)).role
    if cls in _NO_OP or node.name in fused:
        return None
    if cls in _ONE_D:
        return _lower_1d(low, node, x, in_shape, out_shape)
    if cls == "Conv2DTranspose" and a.get("groups", 1) == 1:
        shape = _output_shape_of(low, node, x, in_shape)
        filt = low.const((out_shape[-1],) + tuple(a["kernel_size"]) + (in_shape[-1],), 1, out_shape[-1])
        bias = low.const((out_shape[-1],), 4, out_shape[-1]) if _keeps_bias(node.layer, low.assume_trained) \
            else ("none", -1)
        y = low.op("TRANSPOSE_CONV", [shape, filt, x, bias], out_shape, node.name)
        return _activation(low, node, y, out_shape)
    if cls == "UpSampling2D" and getattr(node.layer, "interpolation", "nearest") == "bilinear":
        y = low.op("RESIZE_BILINEAR", [x, low.const((2,), 4, 0)], out_shape, node.name)
        return y
    if cls == "Conv2D" and a.get("groups", 1) == 1:
        k = tuple(a["kernel_size"])
        y = low.weighted("CONV_2D", node, x, (out_shape[-1],) + k + (in_shape[-1],), out_shape[-1])
    elif cls == "DepthwiseConv2D":
        y = low.weighted("DEPTHWISE_CONV_2D", node, x, (1,) + tuple(a["kernel_size"]) + (out_shape[-1],),
                         out_shape[-1])
    elif cls == "SeparableConv2D":
        mid = in_shape[-1] * a.get("depth_multiplier", 1)
        dw_filter = low.const((1,) + tuple(a["kernel_size"]) + (mid,), 1, mid)
        h = low.op("DEPTHWISE_CONV_2D", [x, dw_filter, low.const((mid,), 4, mid)],
                   out_shape[:-1] + (mid,), node.name)
        y = low.weighted("CONV_2D", node, h, (out_shape[-1], 1, 1, mid), out_shape[-1])
    elif cls == "Dense" and len(in_shape) == 2:
        y = low.weighted("FULLY_CONNECTED", node, x, (out_shape[-1], in_shape[-1]), out_shape[-1],
                         bias=_keeps_bias(node.layer, low.assume_trained))
    elif cls in _SIMPLE and all(k in low.of_key for k in node.inputs):
        inputs = [low.of_key[k] for k in node.inputs]
        if len(inputs) == 1 and type(node.layer).__module__.startswith("keras.src.ops."):
            # a Keras op with a scalar operand (``x * (1 / 6)``): one shared constant per op type
            inputs.append(low.const((), 1, 1, share=("operand", cls)))
        if len(inputs) <= 2 or cls == "Concatenate":
            y = low.op(_SIMPLE[cls], inputs, out_shape, node.name)
        else:  # binary kernels: an n-way Add is ((a + b) + c) + ..., in operand order
            y = inputs[0]
            for operand in inputs[1:]:
                y = low.op(_SIMPLE[cls], [y, operand], out_shape, node.name)
    elif cls == "GlobalAveragePooling2D":
        y = low.op("MEAN", [x, low.const((2,), 4, 0, share=("axis", 1, 2))], out_shape, node.name)
    elif cls in ("Flatten", "Reshape") and role in ("flatten", "pass", "reshape", "pin"):
        if in_shape == out_shape:
            return None
        shape = low.op("SHAPE", [x], (len(in_shape),), node.name, itemsize=4, quant=0)
        begin, one = low.const((1,), 4, share=("i32", 0)), low.const((1,), 4, share=("i32", 1))
        batch = low.op("STRIDED_SLICE", [shape, begin, one, one], (), node.name, itemsize=4, quant=0)
        dims = [low.const((), 4, share=("scalar", d)) for d in out_shape[1:]]
        packed = low.op("PACK", [batch] + dims, (len(out_shape),), node.name, itemsize=4, quant=0)
        y = low.op("RESHAPE", [low.expanded.get(x, x), packed], out_shape, node.name)
    elif cls == "ZeroPadding2D":
        y = low.op("PAD", [x, low.const((4, 2), 4)], out_shape, node.name)
    elif cls in ("ReLU", "Activation") or role == "pass" and cls.startswith(("Relu", "Sigmoid", "Hard")):
        return _activation(low, node, x, out_shape)
    elif cls == "BatchNormalization":
        scaled = low.op("MUL", [x, low.const((out_shape[-1],), 1, 1)], out_shape, node.name)
        y = low.op("ADD", [scaled, low.const((out_shape[-1],), 1, 1)], out_shape, node.name)
    else:
        low.approximated.append(node.name)
        inputs = [low.of_key[k] for k in node.inputs if k in low.of_key]
        y = low.op(f"UNKNOWN:{cls}", inputs, out_shape, node.name)
    return _activation(low, node, y, out_shape) if "activation" in a and cls != "Activation" else y


_ONE_D = {"Conv1D", "DepthwiseConv1D", "SeparableConv1D", "MaxPooling1D", "AveragePooling1D",
          "GlobalAveragePooling1D"}


def _lower_1d(low: _Lowering, node, x, in_shape, out_shape):
    """1-D layers as the converter lowers them: EXPAND_DIMS to (1, 1, T, C), the 2-D op (its
    activation fused), RESHAPE back to (1, T', C'); global average pooling as MEAN on axis 1."""
    a, cls, name = node.attrs, node.class_name, node.name
    if cls == "GlobalAveragePooling1D":
        return low.op("MEAN", [x, low.const((), 4, 0, share=("scalar", 1))], out_shape, name)
    wide = lambda channels: (1, 1, out_shape[1], channels)  # noqa: E731
    axis = -3 if cls == "Conv1D" else 1  # as Keras writes them; equal int32 scalars are one tensor
    h = low.op("EXPAND_DIMS", [x, low.const((), 4, 0, share=("scalar", axis))], (1, 1) + tuple(in_shape[1:]), name)
    kernel = tuple(a.get("kernel_size", (1,)))
    if cls in ("MaxPooling1D", "AveragePooling1D"):
        y = low.op("MAX_POOL_2D" if cls == "MaxPooling1D" else "AVERAGE_POOL_2D", [h], wide(out_shape[-1]), name)
    elif cls == "Conv1D":
        y = low.weighted("CONV_2D", node, h, (out_shape[-1], 1) + kernel + (in_shape[-1],), out_shape[-1],
                         shape=wide(out_shape[-1]))
    elif cls == "DepthwiseConv1D":
        y = low.weighted("DEPTHWISE_CONV_2D", node, h, (1, 1) + kernel + (out_shape[-1],), out_shape[-1],
                         shape=wide(out_shape[-1]))
    else:  # SeparableConv1D
        mid = in_shape[-1] * a.get("depth_multiplier", 1)
        d = low.op("DEPTHWISE_CONV_2D", [h, low.const((1, 1) + kernel + (mid,), 1, mid), low.const((mid,), 4, mid)],
                   wide(mid), name)
        y = low.weighted("CONV_2D", node, d, (out_shape[-1], 1, 1, mid), out_shape[-1], shape=wide(out_shape[-1]))
    if "activation" in a:
        y = _activation(low, node, y, wide(out_shape[-1]))
    # the converter stores equal constants once: squeezes to one shape share their shape tensor
    squeezed = low.op("RESHAPE", [y, low.const((3,), 4, 0, share=("squeeze", out_shape))], out_shape, name)
    low.expanded[squeezed] = y
    return squeezed


def _output_shape_of(low: _Lowering, node, x, in_shape):
    """The int32 output-shape tensor the converter computes for a transposed conv: SHAPE of the
    input, its batch sliced out and PACKed with the three fixed output dimensions."""
    shape = low.op("SHAPE", [x], (len(in_shape),), node.name, itemsize=4, quant=0)
    begin, one = low.const((1,), 4, share=("i32", 0)), low.const((1,), 4, share=("i32", 1))
    batch = low.op("STRIDED_SLICE", [shape, begin, one, one], (), node.name, itemsize=4, quant=0)
    dims = [low.const((), 4, share=("scalar", d)) for d in low.shape(node.outputs[0])[1:]]
    return low.op("PACK", [batch] + dims, (4,), node.name, itemsize=4, quant=0)


def _activation_name(node) -> str:
    a = node.attrs
    if node.class_name == "ReLU":
        return "relu6" if a.get("max_value") == 6 or getattr(node.layer, "max_value", None) == 6 else "relu"
    return a.get("activation", "linear")


def _activation(low: _Lowering, node, x, out_shape):
    name = _activation_name(node)
    if name == "linear":
        return x
    producer = low.ops[-1] if low.ops else None
    sole_user = node.class_name != "Activation" and node.class_name != "ReLU" or \
        len(low.graph.tensors[node.inputs[0]].consumers) == 1
    fuses = producer and (producer[0] in _FUSES_ACTIVATION or producer[0] == "TRANSPOSE_CONV" and
                          producer[1][3] != ("none", -1))  # a transposed conv fuses only with its bias
    if name in ("relu", "relu6") and fuses and producer[2][0] == x \
            and sole_user:
        return x
    y = x
    for op in _ACTIVATION_OPS.get(name, [f"UNKNOWN:{name}"]):
        inputs = [y, x] if op == "MUL" else [y]
        y = low.op(op, inputs, out_shape, node.name)
    if name not in _ACTIVATION_OPS:
        low.approximated.append(node.name)
    return y


_WEIGHTED = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")


def _sole_weighted_producer(graph: Graph, node) -> bool:
    source = graph.tensors[node.inputs[0]]
    producer = graph.node(source.producer) if source.producer else None
    return bool(producer and producer.class_name in _WEIGHTED and len(source.consumers) == 1
                and producer.attrs.get("activation", "linear") == "linear")


def _foldable(graph: Graph) -> set:
    """Layers the converter folds away: a BatchNorm, or a Keras op adding a scalar (``x + 3.0``),
    directly after a conv/dense with no other consumer (into its bias), and a ZeroPadding2D
    feeding only a valid-padding conv (becomes its padding)."""
    folded = set()
    for node in graph.nodes:
        if type(node.layer).__module__.startswith("keras.src.ops.") and node.class_name in ("Add", "Subtract") \
                and len(node.inputs) == 1 and _sole_weighted_producer(graph, node):
            folded.add(node.name)
        if node.class_name == "ZeroPadding2D":
            users = graph.tensors[node.outputs[0]].consumers
            if len(users) == 1 and graph.node(users[0]).class_name in ("Conv2D", "DepthwiseConv2D") \
                    and graph.node(users[0]).attrs.get("padding", "valid") == "valid":
                folded.add(node.name)
        if node.class_name == "BatchNormalization" and _sole_weighted_producer(graph, node):
            folded.add(node.name)
    return folded


def lower(graph: Graph, shapes: dict | None = None, *, assume_trained: bool = False) -> _Lowering:
    """The converter's ops of ``graph`` (tensor shapes overridden by ``shapes``) in Keras graph
    order; with ``assume_trained``, as the model will be once trained (no all-zero Dense bias).
    The op and activation lists have the same structure for any pruned ``shapes``."""
    low = _Lowering(graph, shapes or {}, assume_trained)
    fused = _foldable(graph)
    for key in graph.inputs:
        low.of_key[key] = low.act(low.shape(key), key)
    for node in graph.nodes:
        if node.is_input:
            continue
        ref = _lower_node(low, node, fused)
        low.of_key[node.outputs[0]] = low.of_key[node.inputs[0]] if ref is None else ref
        if ref is not None:
            spec, _ = low.acts[ref[1]]
            low.acts[ref[1]] = (spec, node.outputs[0])
    return low


def micro_graph(graph: Graph, shapes: dict | None = None, *, assume_trained: bool = False,
                schedule=None) -> tuple:
    """Lower ``graph`` (see `lower`) to the `MicroGraph` TFLM sees: ops and activations in the
    converter's order when a `Schedule` of ``graph`` is given, else in Keras graph order.

    Returns ``(MicroGraph, {micro tensor index: graph tensor key}, {op index: layer name},
    approximated layer names)``.
    """
    low = lower(graph, shapes, assume_trained=assume_trained)
    inputs = [low.of_key[k] for k in graph.inputs]
    acts = list(range(len(low.acts))) if schedule is None else list(schedule.act_order)
    op_order = list(range(len(low.ops))) if schedule is None else list(schedule.op_order)
    order = inputs + [("c", i) for i in range(len(low.consts))] + \
        [("a", i) for i in acts if ("a", i) not in inputs]
    index = {ref: i for i, ref in enumerate(order)}
    index[("none", -1)] = -1
    tensors = tuple(low.consts[r[1]] if r[0] == "c" else low.acts[r[1]][0] for r in order)
    ops = tuple(OpSpec(name, tuple(index[r] for r in ins), tuple(index[r] for r in outs))
                for name, ins, outs, _ in (low.ops[j] for j in op_order))
    keys = {index[("a", i)]: key for i, (_, key) in enumerate(low.acts) if key is not None}
    layers = {i: low.ops[j][3] for i, j in enumerate(op_order)}
    micro = MicroGraph(tensors, ops, tuple(range(len(inputs))), tuple(index[low.of_key[k]] for k in graph.outputs))
    approximated = tuple(low.approximated) + (() if schedule is None or schedule.exact else (schedule.reason,))
    return micro, keys, layers, approximated
