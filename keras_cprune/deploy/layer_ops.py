"""The TFLite ops each layer type lowers to, as the converter emits them for the int8 model.

One function per layer type, looked up by `lowering_of` (`LAYERS`, `OPS`; a registered layer's
`OpSpec.lower` first). Each has the signature
``(low, node, x, in_shape, out_shape) -> ref | None``: ``low`` is the `lowering` builder
(``low.op``, ``low.const``, ``low.weighted``), ``x`` the ref of the node's first input and the
shapes carry the batch axis, ``(1, H, W, C)``. It returns the ref of the node's output, or None
when the node is an alias of its input (Dropout). Weighted ops fuse a following ReLU/ReLU6 the
way the converter does (see `activation`).
"""
from __future__ import annotations

import dataclasses

from tflm_export.micro.op_graph import MicroTensor, Window

from keras_cprune.deploy.folded_constants import keeps_bias, keeps_offset, uniform_scale
from keras_cprune.graph.layers import origin, registered_spec

_FUSES_ACTIVATION = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL",
                     "MAX_POOL_2D", "AVERAGE_POOL_2D"}
_ACTIVATION_OPS = {"sigmoid": ["LOGISTIC"], "tanh": ["TANH"], "hard_swish": ["HARD_SWISH"],
                   "hard_silu": ["HARD_SWISH"], "swish": ["LOGISTIC", "MUL"], "silu": ["LOGISTIC", "MUL"],
                   "softmax": ["SOFTMAX"], "relu": ["RELU"], "relu6": ["RELU6"], "leaky_relu": ["LEAKY_RELU"]}


def unknown(low, node, x, in_shape, out_shape):
    """A layer without a known lowering: one ``UNKNOWN:<class>`` op (then its activation), and
    the layer listed as approximated."""
    low.approximated.append(node.name)
    inputs = [low.of_key[k] for k in node.inputs if k in low.of_key]
    y = low.op(f"UNKNOWN:{node.class_name}", inputs, out_shape, node.name)
    return activation(low, node, y, out_shape) if "activation" in node.attrs and node.class_name != "Activation" else y


def alias(low, node, x, in_shape, out_shape):
    """Dropout, noise, Identity: no op, the output is the input."""
    return None


def dropped_constants(graph, assume_trained: bool) -> tuple:
    """Names of the layers whose all-zero bias (Dense, transposed conv) or BatchNorm offset the
    converter drops (not ``assume_trained``): they change the lowered ops, not only their
    constants (a transposed conv without bias no longer fuses its ReLU, a BatchNorm loses its ADD)."""
    if assume_trained:
        return ()
    return tuple(node.name for node in graph.nodes if not node.is_input and (
        lowering_of(node) in (dense, transpose_conv_2d) and getattr(node.layer, "bias", None) is not None
        and not keeps_bias(node.layer, False) or lowering_of(node) is batch_norm and not keeps_offset(node.layer, False)))


def _pair(node, name: str) -> tuple:
    """``(height, width)`` of a layer's stride, dilation or pool size; a 1-D layer's ``k`` is
    ``(1, k)``, as its op runs on the (1, 1, T, C) tensor EXPAND_DIMS makes."""
    value = node.attrs.get(name) or 1
    value = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    return (1,) + value if len(value) == 1 else value


def window_of(node, pool: bool = False) -> Window:
    """The `Window` of a convolution (strides, dilation_rate) or pooling (strides, pool_size) layer."""
    if pool:
        return Window(_pair(node, "strides"), (1, 1), _pair(node, "pool_size"))
    return Window(_pair(node, "strides"), _pair(node, "dilation_rate"))


_POINTWISE = Window()  # a separable conv's 1x1 CONV_2D


def conv_2d(low, node, x, in_shape, out_shape):
    """CONV_2D, filter (out, kh, kw, in), int32 bias; grouped convolutions are not lowered."""
    if node.attrs.get("groups", 1) != 1:
        return unknown(low, node, x, in_shape, out_shape)
    filt = (out_shape[-1],) + tuple(node.attrs["kernel_size"]) + (in_shape[-1],)
    y = low.weighted("CONV_2D", node, x, filt, out_shape[-1], window=window_of(node))
    return activation(low, node, y, out_shape)


def depthwise_conv_2d(low, node, x, in_shape, out_shape):
    filt = (1,) + tuple(node.attrs["kernel_size"]) + (out_shape[-1],)
    y = low.weighted("DEPTHWISE_CONV_2D", node, x, filt, out_shape[-1], window=window_of(node))
    return activation(low, node, y, out_shape)


def separable_conv_2d(low, node, x, in_shape, out_shape):
    """DEPTHWISE_CONV_2D to ``in * depth_multiplier`` channels, then a 1x1 CONV_2D."""
    mid = in_shape[-1] * node.attrs.get("depth_multiplier", 1)
    dw_filter = low.const((1,) + tuple(node.attrs["kernel_size"]) + (mid,), 1, mid)
    h = low.op("DEPTHWISE_CONV_2D", [x, dw_filter, low.const((mid,), 4, mid)], out_shape[:-1] + (mid,), node.name,
               window=window_of(node))
    y = low.weighted("CONV_2D", node, h, (out_shape[-1], 1, 1, mid), out_shape[-1], window=_POINTWISE)
    return activation(low, node, y, out_shape)


def dense(low, node, x, in_shape, out_shape):
    """FULLY_CONNECTED on a (1, features) input; Dense on higher-rank inputs is not lowered."""
    if len(in_shape) != 2:
        return unknown(low, node, x, in_shape, out_shape)
    y = low.weighted("FULLY_CONNECTED", node, x, (out_shape[-1], in_shape[-1]), out_shape[-1],
                     bias=keeps_bias(node.layer, low.assume_trained), per_channel=low.per_channel_dense)
    return activation(low, node, y, out_shape)


def transpose_conv_2d(low, node, x, in_shape, out_shape):
    """TRANSPOSE_CONV(output shape, filter (out, kh, kw, in), input, bias or none), a BatchNorm
    after it folded into its filter and bias (`lowering._foldable`). The output shape is
    computed (`_packed_shape`), or the input's SHAPE where the layer keeps its input's shape
    (stride 1, as many filters as input channels): the converter folds the computation. That
    form is chosen by the unpruned shapes, so pruned variants keep the converter's op order; a
    variant that would take the other form is listed as approximated."""
    if node.attrs.get("groups", 1) != 1:
        return unknown(low, node, x, in_shape, out_shape)
    norm = _folded_norm(low, node)
    keeps_shape = low.graph.tensors[node.inputs[0]].shape == low.graph.tensors[node.outputs[0]].shape
    if keeps_shape != (in_shape == out_shape):
        low.approximated.append(node.name)
    shape = low.op("SHAPE", [x], (len(in_shape),), node.name, itemsize=4, quant=0) if keeps_shape else \
        _packed_shape(low, node, x, in_shape, out_shape)
    filt = low.const((out_shape[-1],) + tuple(node.attrs["kernel_size"]) + (in_shape[-1],), 1, out_shape[-1])
    keeps = keeps_bias(node.layer, low.assume_trained) or norm is not None and \
        keeps_offset(norm.layer, low.assume_trained)
    bias = low.const((out_shape[-1],), 4, out_shape[-1]) if keeps else ("none", -1)
    y = low.op("TRANSPOSE_CONV", [shape, filt, x, bias], out_shape, node.name, window=Window(_pair(node, "strides")))
    if keeps or norm is not None:  # a bias add in the TensorFlow graph, even of zeros: a ReLU fuses
        low.fuses_relu.add(y)
    return activation(low, node, y, out_shape)


def _folded_norm(low, node):
    """The BatchNorm node folded into ``node`` (its sole consumer), or None."""
    users = low.graph.tensors[node.outputs[0]].consumers
    return low.graph.node(users[0]) if len(users) == 1 and users[0] in low.folded else None


def pool_2d(op: str):
    """MAX_POOL_2D or AVERAGE_POOL_2D with the layer's window."""
    def lower(low, node, x, in_shape, out_shape):
        return low.op(op, [x], out_shape, node.name, window=window_of(node, pool=True))

    lower.__name__ = lower.__qualname__ = f"pool_{op.lower()}"
    return lower


def resize(low, node, x, in_shape, out_shape):
    """UpSampling2D: RESIZE_BILINEAR, or nearest RESIZE_NEAREST_NEIGHBOR from tf_keras; a Keras 3
    nearest one converts to TILE, which TFLM has no kernel for."""
    interpolation = getattr(node.layer, "interpolation", "nearest")
    op = {"bilinear": "RESIZE_BILINEAR", "nearest": "RESIZE_NEAREST_NEIGHBOR" if _legacy(low) else None}.get(interpolation)
    if op is None:
        return unknown(low, node, x, in_shape, out_shape)
    return low.op(op, [x, low.const((2,), 4, 0)], out_shape, node.name)


def elementwise(op: str, chain: bool = True):
    """The lowering of a one-op layer (pooling, Add, Concatenate...). A Keras op with a scalar
    operand (``x * (1 / 6)``) gets one shared constant per op type; with ``chain``, an n-way
    layer becomes binary ops in operand order, ((a + b) + c) + ..."""
    def lower(low, node, x, in_shape, out_shape):
        if not all(k in low.of_key for k in node.inputs):
            return unknown(low, node, x, in_shape, out_shape)
        inputs = [low.of_key[k] for k in node.inputs]
        if len(inputs) == 1 and type(node.layer).__module__.startswith("keras.src.ops."):
            inputs.append(low.const((), 1, 1, share=("operand", node.class_name)))
        if len(inputs) <= 2 or not chain:
            return low.op(op, inputs, out_shape, node.name)
        y = inputs[0]
        for operand in inputs[1:]:
            y = low.op(op, [y, operand], out_shape, node.name)
        return y

    lower.__name__ = lower.__qualname__ = f"elementwise_{op.lower()}"
    return lower


def mean_2d(low, node, x, in_shape, out_shape):
    """Global average pooling: MEAN over axes (1, 2)."""
    return low.op("MEAN", [x, low.const((2,), 4, 0, share=("axis", 1, 2))], out_shape, node.name)


def mean_1d(low, node, x, in_shape, out_shape):
    return low.op("MEAN", [x, low.const((), 4, 0, share=("scalar", 1))], out_shape, node.name)


def reshape(low, node, x, in_shape, out_shape):
    """Flatten/Reshape as SHAPE-STRIDED_SLICE-PACK-RESHAPE (none when the shape is unchanged); a
    squeezed 1-D activation is reshaped from the 4-D tensor it came from. A tf_keras Flatten, and any
    reshape at batch 1 (``low.batch_one``), is one RESHAPE by a constant shape, which the converter
    merges into a squeeze RESHAPE before it."""
    if in_shape == out_shape:
        return None
    if node.class_name == "Flatten" and _legacy(low) or low.batch_one:
        return _constant_reshape(low, node, x, out_shape)
    packed = _packed_shape(low, node, x, in_shape, out_shape)
    return low.op("RESHAPE", [low.expanded.get(x, x), packed], out_shape, node.name)


def _legacy(low) -> bool:
    """Whether the graph is a tf_keras (Keras 2) model, which the converter lowers a little differently."""
    return low.graph.keras.__name__ == "tf_keras"


def _constant_reshape(low, node, x, out_shape):
    shape = low.const((len(out_shape),), 4, 0, share=("shape", out_shape))
    if x in low.expanded and len(low.graph.tensors[node.inputs[0]].consumers) == 1:
        # the squeeze RESHAPE (the last op of x's producer) becomes this one: x takes the flat shape
        index = next(i for i, op in enumerate(low.ops) if op[2] == (x,))
        name, inputs, outputs, layer = low.ops[index]
        low.ops[index] = (name, (inputs[0], shape), outputs, layer)
        spec, key = low.acts[x[1]]
        low.acts[x[1]] = (dataclasses.replace(spec, shape=tuple(out_shape)), key)
        return x
    return low.op("RESHAPE", [x, shape], out_shape, node.name)


def _packed_shape(low, node, x, in_shape, out_shape):
    """The int32 shape tensor the converter computes: SHAPE of the input, its batch sliced out
    and PACKed with the fixed output dimensions."""
    shape = low.op("SHAPE", [x], (len(in_shape),), node.name, itemsize=4, quant=0)
    begin, one = low.const((1,), 4, share=("i32", 0)), low.const((1,), 4, share=("i32", 1))
    batch = low.op("STRIDED_SLICE", [shape, begin, one, one], (), node.name, itemsize=4, quant=0)
    dims = [low.const((), 4, share=("scalar", d)) for d in out_shape[1:]]
    return low.op("PACK", [batch] + dims, (len(out_shape),), node.name, itemsize=4, quant=0)


def pad(low, node, x, in_shape, out_shape):
    return low.op("PAD", [x, low.const((4, 2), 4)], out_shape, node.name)


def batch_norm(low, node, x, in_shape, out_shape):
    """A BatchNorm not folded into a conv: MUL by the scale, ADD the offset unless it is all zero.
    A scale of one value throughout (a fresh layer's ``1 / sqrt(1 + eps)``) is one constant with
    every other such scale of that value and width: the converter stores equal constants once."""
    value = None if low.assume_trained else uniform_scale(node.layer)
    share = None if value is None else ("scale", out_shape[-1], value)
    scaled = low.op("MUL", [x, low.const((out_shape[-1],), 1, 1, share=share)], out_shape, node.name)
    if not keeps_offset(node.layer, low.assume_trained):
        return scaled
    return low.op("ADD", [scaled, low.const((out_shape[-1],), 1, 1)], out_shape, node.name)


def activation_layer(low, node, x, in_shape, out_shape):
    """ReLU, Activation and Keras activation ops (``keras.ops.relu``)."""
    return activation(low, node, x, out_shape)


def one_d(body, axis: int = 1, legacy_axis: int | None = None):
    """A 1-D layer as the converter lowers it: EXPAND_DIMS at ``axis`` (``legacy_axis`` for a tf_keras
    model, if given; a RESHAPE at batch 1) to 4-D (sized as (1, 1, T, C)), the 2-D op ``body(low, node, h,
    in_shape, wide_shape)`` and its activation, RESHAPE back to (1, T', C'). At batch 1, between 1-D
    layers expanding at the same axis, the squeeze and the expand fold away (``low.wide``)."""
    def lower(low, node, x, in_shape, out_shape):
        at = _expand_axis(low, lower)
        wide_in = (1, 1) + tuple(in_shape[1:])
        if x in low.wide:
            h = x
        elif low.batch_one:
            h = low.op("RESHAPE", [x, low.const((4,), 4, 0, share=("expand", wide_in))], wide_in, node.name)
        else:
            h = low.op("EXPAND_DIMS", [x, low.const((), 4, 0, share=("scalar", at))], wide_in, node.name)
        wide = (1, 1, out_shape[1], out_shape[-1])
        y = activation(low, node, body(low, node, h, in_shape, wide), wide)
        users = low.graph.tensors[node.outputs[0]].consumers
        if low.batch_one and users and node.outputs[0] not in low.graph.outputs and all(
                _expand_axis(low, lowering_of(low.graph.node(user))) == at for user in users):
            low.wide.add(y)
            return y
        # the converter stores equal constants once: squeezes to one shape share their shape tensor
        squeezed = low.op("RESHAPE", [y, low.const((3,), 4, 0, share=("squeeze", out_shape))], out_shape, node.name)
        low.expanded[squeezed] = y
        return squeezed

    lower.__name__ = lower.__qualname__ = f"one_d_{body.__name__}"
    lower.expand_axes = (axis, legacy_axis)
    return lower


def _expand_axis(low, lowering) -> int | None:
    """The axis a `one_d` lowering expands its input at; None for any other lowering."""
    axis, legacy_axis = getattr(lowering, "expand_axes", (None, None))
    return legacy_axis if legacy_axis is not None and _legacy(low) else axis


def _kernel_1d(node) -> tuple:
    return tuple(node.attrs.get("kernel_size", (1,)))


def conv_1d(low, node, h, in_shape, wide):
    filt = (wide[-1], 1) + _kernel_1d(node) + (in_shape[-1],)
    return low.weighted("CONV_2D", node, h, filt, wide[-1], shape=wide, window=window_of(node))


def depthwise_conv_1d(low, node, h, in_shape, wide):
    return low.weighted("DEPTHWISE_CONV_2D", node, h, (1, 1) + _kernel_1d(node) + (wide[-1],), wide[-1], shape=wide,
                        window=window_of(node))


def separable_conv_1d(low, node, h, in_shape, wide):
    mid = in_shape[-1] * node.attrs.get("depth_multiplier", 1)
    inputs = [h, low.const((1, 1) + _kernel_1d(node) + (mid,), 1, mid), low.const((mid,), 4, mid)]
    d = low.op("DEPTHWISE_CONV_2D", inputs, wide[:-1] + (mid,), node.name, window=window_of(node))
    return low.weighted("CONV_2D", node, d, (wide[-1], 1, 1, mid), wide[-1], shape=wide, window=_POINTWISE)


def max_pool_1d(low, node, h, in_shape, wide):
    return low.op("MAX_POOL_2D", [h], wide, node.name, window=window_of(node, pool=True))


def average_pool_1d(low, node, h, in_shape, wide):
    return low.op("AVERAGE_POOL_2D", [h], wide, node.name, window=window_of(node, pool=True))


def lstm(low, node, x, in_shape, out_shape):
    """UNIDIRECTIONAL_SEQUENCE_LSTM (`tflm_export.recurrent`): 24 inputs, the sequence, 4 input and
    4 recurrent int8 gate weights (per tensor), 4 int32 gate biases, the int8 output and int16 cell
    state variables, the peephole, projection and layer-norm ones absent; five calibration
    intermediates no op reads; then the last step's STRIDED_SLICE without ``return_sequences``."""
    units, none = node.layer.units, ("none", -1)
    weights = [low.const((units, in_shape[-1]), 1, 1) for _ in range(4)] + \
        [low.const((units, units), 1, 1) for _ in range(4)]
    biases = [low.const((units,), 4, 1) for _ in range(4)]
    states = [low.state((1, units), 1), low.state((1, units), 2)]
    inputs = [x, *weights, none, none, none, *biases, none, none, *states] + [none] * 4
    low.unused += [MicroTensor((0,), 4, False, 0)] * 4 + [MicroTensor((0,), 1, False, 1)]
    sequence = low.op("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, tuple(in_shape[:2]) + (units,), node.name)
    if node.layer.return_sequences:
        return sequence
    slices = [low.const((3,), 4, 0, share=("last step", k)) for k in range(3)]  # begin, end, strides
    return low.op("STRIDED_SLICE", [sequence, *slices], out_shape, node.name)


def _activation_name(node) -> str:
    if node.class_name == "ReLU":
        return "relu6" if node.attrs.get("max_value") == 6 or getattr(node.layer, "max_value", None) == 6 else "relu"
    return node.attrs.get("activation", "linear")


def activation(low, node, x, out_shape):
    """The ops of ``node``'s activation applied to ``x``: none for linear, and none for a ReLU or
    ReLU6 the converter fuses into the op that produced ``x`` (a conv, dense, add, pool... that
    has no other user; a transposed conv only with a bias or a BatchNorm folded into it), and
    none for one that ``x`` has had already (fused or an op: the converter keeps one)."""
    name = _activation_name(node)
    if name == "linear":
        return x
    producer = low.ops[-1] if low.ops else None
    sole_user = node.class_name != "Activation" and node.class_name != "ReLU" or \
        len(low.graph.tensors[node.inputs[0]].consumers) == 1
    fuses = producer and (producer[0] in _FUSES_ACTIVATION or producer[2][0] in low.fuses_relu)
    if name in ("relu", "relu6") and (low.rectified.get(x) == name or fuses and producer[2][0] == x and sole_user):
        low.rectified[x] = name  # relu(relu(x)) is one: the converter keeps one
        return x
    y = x
    for op in _ACTIVATION_OPS.get(name, [f"UNKNOWN:{name}"]):
        y = low.op(op, [y, x] if op == "MUL" else [y], out_shape, node.name)
    if name in ("relu", "relu6"):
        low.rectified[y] = name
    if name not in _ACTIVATION_OPS:
        low.approximated.append(node.name)
    return y


_ELEMENTWISE = {"Add": "ADD", "Subtract": "SUB", "Multiply": "MUL", "Maximum": "MAXIMUM", "Minimum": "MINIMUM"}
# Built-in Keras / tf_keras layers by class name (the layer table, `graph.layers.TABLE`, has their other rules).
LAYERS = {
    "Conv1D": one_d(conv_1d, axis=-3), "Conv2D": conv_2d, "Conv2DTranspose": transpose_conv_2d,
    "DepthwiseConv1D": one_d(depthwise_conv_1d), "DepthwiseConv2D": depthwise_conv_2d,
    "SeparableConv1D": one_d(separable_conv_1d), "SeparableConv2D": separable_conv_2d,
    "Dense": dense, "BatchNormalization": batch_norm,
    **{name: alias for name in ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                                "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity")},
    "ReLU": activation_layer, "Activation": activation_layer, "LeakyReLU": elementwise("LEAKY_RELU"),
    "ZeroPadding2D": pad, "UpSampling2D": resize,
    "MaxPooling1D": one_d(max_pool_1d, legacy_axis=2), "AveragePooling1D": one_d(average_pool_1d, legacy_axis=2),
    "MaxPooling2D": pool_2d("MAX_POOL_2D"), "AveragePooling2D": pool_2d("AVERAGE_POOL_2D"),
    "GlobalAveragePooling1D": mean_1d, "GlobalAveragePooling2D": mean_2d,
    **{name: elementwise(op) for name, op in _ELEMENTWISE.items()},
    "Concatenate": elementwise("CONCATENATION", chain=False),
    "Flatten": reshape, "Reshape": reshape, "Softmax": elementwise("SOFTMAX"), "LSTM": lstm,
}
# Keras 3 operations on symbolic tensors (``x + 3.0``, ``keras.ops.relu``) by class name.
OPS = {
    **{name: elementwise(op) for name, op in _ELEMENTWISE.items()},
    **{name: activation_layer for name in ("Relu", "Relu6", "Sigmoid", "HardSigmoid", "HardSilu")},
    "Concatenate": elementwise("CONCATENATION", chain=False), "Reshape": reshape, "Softmax": elementwise("SOFTMAX"),
}


def lowering_of(node):
    """The function emitting ``node``'s TFLite ops: a registered layer's ``OpSpec.lower``, else the
    built-in one of its class; `unknown` when there is none."""
    kind = origin(node)
    if kind == "registered":
        return registered_spec(type(node.layer)).lower or unknown
    table = {"op": OPS, "keras": LAYERS}.get(kind, {})
    return table.get(node.class_name, unknown)
