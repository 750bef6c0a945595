"""Per-layer-type table: complexity formulas, channel role and how weights slice.

Adding a layer type means adding one `OpSpec` entry. Formulas take the node's config and its
input/output shapes (batch axis excluded), so they also price hypothetical pruned shapes.

Channel roles (channels are the last axis):
- ``produce``: makes new channels (Conv, Dense...); its input channels are sliced, not coupled.
- ``depthwise``: output channel ``c*m + j`` comes from input channel ``c`` (m = depth multiplier).
- ``pass``: output channel ``c`` is input channel ``c`` (BatchNorm, activations, pooling...).
- ``merge``: element-wise multi-input op; all inputs' channels are coupled (Add, Multiply...).
- ``concat``: output channels are the inputs' channels one after the other.
- ``flatten``: output index ``p*C + c`` carries input channel ``c`` (Flatten, Reshape to 1-D).
- ``consume``: reads its input channels (sliced with them) but its own outputs stay as they are
  (LSTM, GRU, SimpleRNN: input-kernel rows go with the channels; units and recurrent kernel stay).
- ``pin``: channels of inputs and outputs are never pruned (custom, Lambda, grouped conv...); ``why``
  says what the layer is when that is not obvious from its class ("grouped convolution").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

Shape = tuple


@dataclass(frozen=True)
class OpSpec:
    role: str
    params: Callable[[dict, list, list], int] | None = None  # None: count the layer's weights
    macs: Callable[[dict, list, list], int] = lambda cfg, i, o: 0
    width_key: str | None = None  # config key holding the number of output channels
    slices: dict = field(default_factory=dict)  # weight name -> {axis: "in" | "out" | "mid"}
    why: str | None = None  # pin reason of a ``pin``/``consume`` layer when its class alone does not say it
    biases: Callable[[dict], int] | None = None  # bias elements, where not one per output channel


def _prod(values) -> int:
    return math.prod(int(v) for v in values)


def _kernel(cfg: dict) -> int:
    return _prod(cfg["kernel_size"])


def _bias(cfg: dict, n: int) -> int:
    return n if cfg.get("use_bias", True) else 0


def _conv_params(cfg, i, o):
    return _kernel(cfg) * i[0][-1] // cfg.get("groups", 1) * o[0][-1] + _bias(cfg, o[0][-1])


def _conv_macs(cfg, i, o):
    return _prod(o[0][:-1]) * o[0][-1] * _kernel(cfg) * i[0][-1] // cfg.get("groups", 1)


def _tconv_params(cfg, i, o):
    return _kernel(cfg) * i[0][-1] * o[0][-1] + _bias(cfg, o[0][-1])


def _tconv_macs(cfg, i, o):
    return _prod(i[0][:-1]) * i[0][-1] * _kernel(cfg) * o[0][-1]


def _dw_params(cfg, i, o):
    return _kernel(cfg) * o[0][-1] + _bias(cfg, o[0][-1])


def _dw_macs(cfg, i, o):
    return _prod(o[0][:-1]) * o[0][-1] * _kernel(cfg)


def _sep_params(cfg, i, o):
    mid = i[0][-1] * cfg.get("depth_multiplier", 1)
    return _kernel(cfg) * mid + mid * o[0][-1] + _bias(cfg, o[0][-1])


def _sep_macs(cfg, i, o):
    mid = i[0][-1] * cfg.get("depth_multiplier", 1)
    return _prod(o[0][:-1]) * mid * (_kernel(cfg) + o[0][-1])


def _dense_params(cfg, i, o):
    return i[0][-1] * o[0][-1] + _bias(cfg, o[0][-1])


def _dense_macs(cfg, i, o):
    return _prod(i[0][:-1]) * i[0][-1] * o[0][-1]


def _bn_params(cfg, i, o):
    return o[0][-1] * (2 + bool(cfg.get("center", True)) + bool(cfg.get("scale", True)))


def _no_params(cfg, i, o):
    return 0


def _norm_params(cfg, i, o):
    """Normalization: adapted mean and variance over the ``axis`` dims, plus a scalar count;
    none when ``mean``/``variance`` were given as constants."""
    if cfg.get("input_mean") is not None:
        return 0
    axes = cfg.get("axis") or ()
    axes = (axes,) if isinstance(axes, int) else axes
    return 2 * _prod(i[0][_axis(a, i[0])] for a in axes) + 1


def _rnn_biases(gates: int) -> Callable[[dict], int]:
    """Bias elements of a recurrent layer: one per gate and unit; a GRU with ``reset_after`` has a
    second (recurrent) bias row, shape (2, 3*units)."""
    def biases(cfg: dict) -> int:
        rows = 2 if cfg.get("reset_after") else 1
        return gates * cfg["units"] * rows if cfg.get("use_bias", True) else 0

    return biases


def _recurrent(gates: int) -> OpSpec:
    """LSTM (4 gates), GRU (3) or SimpleRNN (1) over (timesteps, features): every step multiplies
    the input (features) and the previous state (units) by each gate's kernel, so per step
    ``gates * units * (features + units)`` MACs. Kernel (features, gates*units) rows are sliced
    with the input channels; recurrent kernel (units, gates*units), bias and units stay."""
    biases = _rnn_biases(gates)

    def params(cfg, i, o):
        return gates * cfg["units"] * (i[0][-1] + cfg["units"]) + biases(cfg)

    def macs(cfg, i, o):
        return i[0][0] * gates * cfg["units"] * (i[0][-1] + cfg["units"])

    return OpSpec("consume", params, macs, None, {"kernel": {0: "in"}}, "recurrent units are not pruned", biases)


_CONV_SLICES = {"kernel": {-2: "in", -1: "out"}, "bias": {0: "out"}}
_TCONV_SLICES = {"kernel": {-2: "out", -1: "in"}, "bias": {0: "out"}}
_DW_SLICES = {"kernel": {-2: "in"}, "depthwise_kernel": {-2: "in"}, "bias": {0: "out"}}
_SEP_SLICES = {"depthwise_kernel": {-2: "in"}, "pointwise_kernel": {-2: "mid", -1: "out"}, "bias": {0: "out"}}
_BN_SLICES = {name: {0: "out"} for name in ("gamma", "beta", "moving_mean", "moving_variance")}

_conv = OpSpec("produce", _conv_params, _conv_macs, "filters", _CONV_SLICES)
_tconv = OpSpec("produce", _tconv_params, _tconv_macs, "filters", _TCONV_SLICES)
_dw = OpSpec("depthwise", _dw_params, _dw_macs, None, _DW_SLICES)
_sep = OpSpec("produce", _sep_params, _sep_macs, "filters", _SEP_SLICES)
_pass = OpSpec("pass", _no_params)
_merge = OpSpec("merge", _no_params)

TABLE: dict[str, OpSpec] = {
    "InputLayer": OpSpec("input", _no_params),
    **{f"Conv{d}D": _conv for d in (1, 2, 3)},
    **{f"Conv{d}DTranspose": _tconv for d in (1, 2, 3)},
    "DepthwiseConv1D": _dw,
    "DepthwiseConv2D": _dw,
    "SeparableConv1D": _sep,
    "SeparableConv2D": _sep,
    "Dense": OpSpec("produce", _dense_params, _dense_macs, "units", {"kernel": {0: "in", 1: "out"}, "bias": {0: "out"}}),
    "BatchNormalization": OpSpec("pass", _bn_params, slices=_BN_SLICES),
    **{name: _pass for name in (
        "ReLU", "LeakyReLU", "ELU", "Activation", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
        "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
        "Identity", "Rescaling", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D",
        "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
        "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
        "AveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    )},
    **{name: _merge for name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")},
    "Concatenate": OpSpec("concat", _no_params),
    "LSTM": _recurrent(4),
    "GRU": _recurrent(3),
    "SimpleRNN": _recurrent(1),
    "Bidirectional": OpSpec("pin", why="Bidirectional wrapper: its recurrent layers are not pruned yet"),
    "Flatten": OpSpec("flatten", _no_params),
    "Reshape": OpSpec("reshape", _no_params),
    "Softmax": OpSpec("pin", _no_params, why="softmax mixes channels"),
    # per-channel statistics that would need re-adapting: its channels stay as they are
    "Normalization": OpSpec("pin", _norm_params, why="per-channel statistics would need re-adapting"),
}

_CHANNEL_MIXING_ACTIVATIONS = {"softmax", "log_softmax"}

# Keras 3 operations called on symbolic tensors (``x + 3.0``, ``keras.ops.multiply``) are graph
# nodes too. Element-wise ones with scalar or tensor operands couple channels like a merge layer.
OPS_TABLE: dict[str, OpSpec] = {
    name: _merge for name in ("Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum")
}
OPS_TABLE.update({name: _pass for name in ("Relu", "Relu6", "Sigmoid", "HardSigmoid", "HardSilu", "Silu",
                                           "Tanh", "Abs", "Negative", "Square", "Sqrt", "Exp")})


def spec_for(node, in_shapes: list, out_shapes: list) -> OpSpec:
    """The `OpSpec` of ``node``, resolved for its config (grouped conv pins, softmax pins...)."""
    module = type(node.layer).__module__
    if module.startswith("keras.src.ops."):
        spec = OPS_TABLE.get(node.class_name)
        if spec is not None and node.attrs.get("array_operands"):
            return OpSpec("pin", _no_params, why="array operand of fixed width")
        return spec or OpSpec("pin", _no_params)
    keras_layer = module.startswith(("keras.", "tf_keras."))
    spec = TABLE.get(node.class_name) if keras_layer else None
    if spec is None:
        return OpSpec("pin", why=None if keras_layer else "custom layer")
    cfg = node.attrs
    if cfg.get("groups", 1) != 1:
        return OpSpec("pin", spec.params, spec.macs, why=f"grouped convolution, groups={cfg['groups']}")
    if cfg.get("data_format", "channels_last") == "channels_first":
        return OpSpec("pin", spec.params, spec.macs, why="channels_first data format")
    if node.class_name == "Activation" and cfg.get("activation") in _CHANNEL_MIXING_ACTIVATIONS:
        return OpSpec("pin", _no_params, why=f"{cfg['activation']} mixes channels")
    if node.class_name == "BatchNormalization" and _axis(cfg.get("axis", -1), in_shapes[0]) != len(in_shapes[0]) - 1:
        return OpSpec("pin", spec.params, why="normalizes an axis other than the channels")
    if node.class_name == "Reshape":
        role = _reshape_role(in_shapes[0], out_shapes[0])
        return OpSpec(role, _no_params, why="moves the channel axis" if role == "pin" else None)
    if node.class_name == "Concatenate" and _axis(cfg.get("axis", -1), out_shapes[0]) != len(out_shapes[0]) - 1:
        return _merge
    if node.class_name in ("Flatten", "Reshape") and len(in_shapes[0]) <= 1:
        return _pass
    return spec


def _reshape_role(in_shape: Shape, out_shape: Shape) -> str:
    if in_shape and out_shape and in_shape[-1] == out_shape[-1]:
        return "pass"  # row-major: the last-axis index is preserved
    if len(out_shape) == 1:
        return "flatten"
    return "pin"


def _axis(axis, shape: Shape) -> int:
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if isinstance(axis, (list, tuple)):
        return -99
    return axis - 1 if axis > 0 else len(shape) + axis  # config axes count the batch axis


def weight_short_name(weight) -> str:
    """``'kernel'`` for Keras 3's ``kernel`` and tf_keras' ``conv/kernel:0``."""
    return weight.name.rsplit("/", 1)[-1].split(":")[0]
