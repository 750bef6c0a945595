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

Users teach the engine their own layer classes with `register_layer`; an unregistered custom
layer stays pinned.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

from keras_cprune.graph import formulas as fm
from keras_cprune.errors import PruningError

Shape = tuple
ROLES = ("produce", "depthwise", "pass", "merge", "concat", "flatten", "consume", "pin")


@dataclass(frozen=True)
class OpSpec:
    """How the engine treats one layer type: formulas, channel role, weight slicing, TFLM lowering.

    The built-in layer types are lowered by `keras_cprune.deploy.layer_ops`; ``lower`` is for
    registered custom layers.

    Formulas take ``(cfg, in_shapes, out_shapes)``: the layer's hyper-parameters (``filters``,
    ``kernel_size``, ``use_bias``...; a registered layer's also hold its ``get_config()``) and
    its input/output shapes without batch.

    Attributes:
        role: the channel role, one of `ROLES` (see the module docstring).
        params: parameter count formula; None counts the layer's weights.
        macs: multiply-accumulate count formula (default 0).
        width_key: the config key holding the number of output channels (``"filters"``).
        slices: weight name -> ``{axis: "in" | "out" | "mid"}``, the channel axes pruning slices.
        why: the pin reason of a ``pin``/``consume`` layer when its class alone does not say it.
        biases: bias elements from ``cfg``, where not one per output channel (recurrent layers).
        lower: ``(low, node, x, in_shape, out_shape) -> ref | None`` emitting the layer's TFLite
            ops (see `keras_cprune.deploy.layer_ops`); None: an ``UNKNOWN`` op and the arena marked approximate.

    Example:

    ```python
    dense = keras_cprune.OpSpec("produce", params=lambda cfg, i, o: i[0][-1] * o[0][-1] + o[0][-1],
                                macs=lambda cfg, i, o: i[0][-1] * o[0][-1], width_key="units",
                                slices={"kernel": {0: "in", 1: "out"}, "bias": {0: "out"}})
    ```
    """

    role: str
    params: Callable[[dict, list, list], int] | None = None
    macs: Callable[[dict, list, list], int] = lambda cfg, i, o: 0
    width_key: str | None = None
    slices: dict = field(default_factory=dict)
    why: str | None = None
    biases: Callable[[dict], int] | None = None
    lower: Callable | None = None


def _recurrent(gates: int) -> OpSpec:
    """LSTM (4 gates), GRU (3) or SimpleRNN (1) over (timesteps, features): every step multiplies
    the input (features) and the previous state (units) by each gate's kernel, so per step
    ``gates * units * (features + units)`` MACs. Kernel (features, gates*units) rows are sliced
    with the input channels; recurrent kernel (units, gates*units), bias and units stay."""
    biases = fm.rnn_biases(gates)

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


def _conv():
    return OpSpec("produce", fm.conv_params, fm.conv_macs, "filters", _CONV_SLICES)


def _tconv():
    return OpSpec("produce", fm.tconv_params, fm.tconv_macs, "filters", _TCONV_SLICES)


def _dw():
    return OpSpec("depthwise", fm.dw_params, fm.dw_macs, None, _DW_SLICES)


def _sep():
    return OpSpec("produce", fm.sep_params, fm.sep_macs, "filters", _SEP_SLICES)


_pass, _merge = OpSpec("pass", fm.no_params), OpSpec("merge", fm.no_params)
_ALIASES = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
            "AlphaDropout", "ActivityRegularization", "Identity")
ELEMENTWISE = ("Add", "Subtract", "Multiply", "Maximum", "Minimum")  # also Keras 3 ops of these names

TABLE: dict[str, OpSpec] = {
    "InputLayer": OpSpec("input", fm.no_params),
    "Conv1D": _conv(),
    "Conv2D": _conv(),
    "Conv3D": _conv(),
    "Conv1DTranspose": _tconv(),
    "Conv2DTranspose": _tconv(),
    "Conv3DTranspose": _tconv(),
    "DepthwiseConv1D": _dw(),
    "DepthwiseConv2D": _dw(),
    "SeparableConv1D": _sep(),
    "SeparableConv2D": _sep(),
    "Dense": OpSpec("produce", fm.dense_params, fm.dense_macs, "units", {"kernel": {0: "in", 1: "out"}, "bias": {0: "out"}}),
    "BatchNormalization": OpSpec("pass", fm.bn_params, slices=_BN_SLICES),
    **{name: _pass for name in (
        "ELU", "Rescaling", "ZeroPadding1D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
        "UpSampling1D", "UpSampling3D", "MaxPooling3D", "AveragePooling3D", "GlobalMaxPooling1D",
        "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAveragePooling3D",
    )},
    **{name: _pass for name in _ALIASES},
    **{name: _pass for name in ("ReLU", "Activation", "LeakyReLU", "ZeroPadding2D", "UpSampling2D", "MaxPooling1D",
                                "AveragePooling1D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling1D",
                                "GlobalAveragePooling2D")},
    **{name: _merge for name in ELEMENTWISE},
    "Average": _merge,
    "Concatenate": OpSpec("concat", fm.no_params),
    "LSTM": _recurrent(4),
    "GRU": _recurrent(3),
    "SimpleRNN": _recurrent(1),
    "Bidirectional": OpSpec("pin", why="Bidirectional wrapper: its recurrent layers are not pruned yet"),
    "Flatten": OpSpec("flatten", fm.no_params),
    "Reshape": OpSpec("reshape", fm.no_params),
    "Softmax": OpSpec("pin", fm.no_params, why="softmax mixes channels"),
    # per-channel statistics that would need re-adapting: its channels stay as they are
    "Normalization": OpSpec("pin", fm.norm_params, why="per-channel statistics would need re-adapting"),
}

_CHANNEL_MIXING_ACTIVATIONS = {"softmax", "log_softmax"}

# Keras 3 operations called on symbolic tensors (``x + 3.0``, ``keras.ops.multiply``) are graph
# nodes too. Element-wise ones with scalar or tensor operands couple channels like a merge layer.
OPS_TABLE: dict[str, OpSpec] = {
    **{name: _merge for name in ELEMENTWISE + ("Divide", "TrueDivide")},
    **{name: _pass for name in ("Relu", "Relu6", "Sigmoid", "HardSigmoid", "HardSilu", "Silu", "Tanh", "Abs",
                                "Negative", "Square", "Sqrt", "Exp")},
    "Concatenate": OpSpec("pin", fm.no_params),
    "Reshape": OpSpec("pin", fm.no_params),
    "Softmax": OpSpec("pin", fm.no_params),
}
_PINNED_OP = OpSpec("pin", fm.no_params)
_REGISTERED: dict[type, OpSpec] = {}


def origin(node) -> str:
    """Where ``node``'s rules come from: "registered" (`register_layer`), "op" (a Keras 3 operation
    on symbolic tensors), "keras" (a Keras or tf_keras layer) or "custom" (any other layer class)."""
    if registered_spec(type(node.layer)) is not None:
        return "registered"
    module = type(node.layer).__module__
    if module.startswith("keras.src.ops."):
        return "op"
    return "keras" if module.startswith(("keras.", "tf_keras.")) else "custom"


def spec_for(node, in_shapes: list, out_shapes: list) -> OpSpec:
    """The `OpSpec` of ``node``: its registered class's, else the built-in one resolved for its
    config (grouped conv pins, softmax pins...); a custom layer not registered is pinned."""
    kind = origin(node)
    if kind == "registered":
        spec = registered_spec(type(node.layer))
        return _layout_pin(spec, node.attrs) or spec
    if kind == "op":
        spec = OPS_TABLE.get(node.class_name, _PINNED_OP)
        if spec.role != "pin" and node.attrs.get("array_operands"):
            return _as(spec, "pin", "array operand of fixed width")
        return spec
    spec = TABLE.get(node.class_name) if kind == "keras" else None
    if spec is None:
        return OpSpec("pin", why=None if kind == "keras" else "custom layer")
    return _layout_pin(spec, node.attrs) or _resolved(node, spec, in_shapes, out_shapes)


def _as(spec: OpSpec, role: str, why: str | None = None) -> OpSpec:
    """``spec``'s formulas (and a registered layer's lowering) under another ``role``, without width or weight slicing."""
    return OpSpec(role, spec.params, spec.macs, why=why, lower=spec.lower)


def _layout_pin(spec: OpSpec, cfg: dict) -> OpSpec | None:
    """A pinned ``spec`` for grouped convolutions and channels-first layers; None otherwise."""
    if cfg.get("groups", 1) != 1:
        return _as(spec, "pin", f"grouped convolution, groups={cfg['groups']}")
    if cfg.get("data_format", "channels_last") == "channels_first":
        return _as(spec, "pin", "channels_first data format")
    return None


def _resolved(node, spec: OpSpec, in_shapes: list, out_shapes: list) -> OpSpec:
    """A built-in ``spec`` resolved for the node's config and shapes."""
    cls, cfg = node.class_name, node.attrs
    if cls == "Activation" and cfg.get("activation") in _CHANNEL_MIXING_ACTIVATIONS:
        return _as(spec, "pin", f"{cfg['activation']} mixes channels")
    if cls == "BatchNormalization" and fm.axis(cfg.get("axis", -1), in_shapes[0]) != len(in_shapes[0]) - 1:
        return _as(spec, "pin", "normalizes an axis other than the channels")
    if cls == "Reshape":
        role = _reshape_role(in_shapes[0], out_shapes[0])
        return _as(spec, role, "moves the channel axis" if role == "pin" else None)
    if cls == "Concatenate" and fm.axis(cfg.get("axis", -1), out_shapes[0]) != len(out_shapes[0]) - 1:
        return _as(spec, "merge")
    if cls == "Flatten" and len(in_shapes[0]) <= 1:
        return _as(spec, "pass")
    return spec


def _reshape_role(in_shape: Shape, out_shape: Shape) -> str:
    if in_shape and out_shape and in_shape[-1] == out_shape[-1]:
        return "pass"  # row-major: the last-axis index is preserved
    if len(out_shape) == 1:
        return "flatten"
    return "pin"


def register_layer(cls, spec: OpSpec) -> OpSpec | None:
    """Teaches keras-cprune a custom layer class instead of pinning it.

    Layers of exactly ``cls`` (not its subclasses) are then priced by ``spec.params`` and
    ``spec.macs``, coupled by ``spec.role``, pruned by rebuilding them with ``spec.width_key`` set
    to their new width in ``get_config()`` and their weights sliced by ``spec.slices``, and
    lowered for the TFLM arena by ``spec.lower`` (without it, an approximated placeholder op).
    ``cls`` is looked up before the built-in table, so a class named like a Keras one does not
    collide with it. The L1/L2 importance scores the weight of ``spec.slices`` with an ``"out"``
    axis and the most dimensions.

    Args:
        cls: The layer class, a subclass of ``keras.layers.Layer``. Rebuilding calls
            ``cls.from_config(layer.get_config())``, so it must serialize its arguments.
        spec: An `OpSpec`. A ``"produce"`` spec needs ``width_key``, the ``__init__`` argument
            holding the number of output channels, and ``slices``, the channel axes of each
            weight by name (``{"kernel": {-2: "in", -1: "out"}, "bias": {0: "out"}}``). Any role:
            every weight with an axis that follows the channels needs an entry (a per-channel gain
            of a ``"pass"`` layer: ``{"gate": {0: "out"}}``); ``{"w": {}}`` says ``w`` has none.

    Returns:
        The `OpSpec` ``cls`` was registered with before, or None.

    Raises:
        PruningError: ``cls`` is not a Layer subclass, ``spec`` not an `OpSpec`, its role
            unknown, or a produce spec without a valid ``width_key`` or ``slices``; when a model
            with such a layer is read (its weights exist once built), a weight ``slices`` misses
            (see `graph.reader.check_weights`).

    Example:

    ```python
    class Scaled(keras.layers.Layer):  # a 1x1 convolution with a learned scale per filter
        def __init__(self, filters, **kwargs):
            super().__init__(**kwargs)
            self.filters = filters
        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(1, 1, input_shape[-1], self.filters), name="kernel")
            self.scale = self.add_weight(shape=(self.filters,), initializer="ones", name="scale")
        def call(self, x):
            return keras.ops.conv(x, self.kernel) * self.scale
        def get_config(self):
            return {**super().get_config(), "filters": self.filters}

    keras_cprune.register_layer(Scaled, keras_cprune.OpSpec(
        "produce", params=lambda cfg, i, o: i[0][-1] * o[0][-1] + o[0][-1],
        macs=lambda cfg, i, o: o[0][0] * o[0][1] * o[0][-1] * i[0][-1],
        width_key="filters", slices={"kernel": {-2: "in", -1: "out"}, "scale": {0: "out"}},
        lower=lambda low, node, x, i, o: low.weighted("CONV_2D", node, x, (o[-1], 1, 1, i[-1]), o[-1])))
    ```
    """
    _check_layer_class(cls)
    _check_spec(cls, spec)
    previous = _REGISTERED.get(cls)
    _REGISTERED[cls] = spec
    return previous


def unregister_layer(cls) -> OpSpec | None:
    """Forgets ``cls``: its layers are pinned again as custom layers.

    Args:
        cls: a layer class given to `register_layer`.

    Returns:
        The `OpSpec` ``cls`` was registered with, or None when it was not registered.

    Example:

    ```python
    keras_cprune.register_layer(Scaled, spec)
    pruned = keras_cprune.prune(model, "PA", 0.5)   # Scaled layers lose filters
    keras_cprune.unregister_layer(Scaled)           # pinned again
    ```
    """
    return _REGISTERED.pop(cls, None)


def registered_spec(cls) -> OpSpec | None:
    """The `OpSpec` ``cls`` is registered with, or None."""
    return _REGISTERED.get(cls)


def _check_layer_class(cls) -> None:
    import keras

    bases = (keras.layers.Layer,)
    try:
        import tf_keras

        bases += (tf_keras.layers.Layer,)
    except ImportError:  # tf_keras is optional for Keras 3 users
        pass
    if not (isinstance(cls, type) and issubclass(cls, bases)):
        raise PruningError(f"Expected `cls` to be a subclass of `keras.layers.Layer`: pass the class itself, "
                           f"e.g. register_layer(MyConv, spec), not an instance. Received: cls={cls!r}.")


def _check_spec(cls, spec) -> None:
    if not isinstance(spec, OpSpec):
        raise PruningError(f"Expected `spec` to be a `keras_cprune.OpSpec`. Received: spec={spec!r}.")
    if spec.role not in ROLES:
        raise PruningError(f"Unknown `spec.role` for {cls.__name__}: expected one of {ROLES}. "
                           f"Received: role={spec.role!r}.")
    for name in ("params", "macs", "lower", "biases"):
        if getattr(spec, name) is not None and not callable(getattr(spec, name)):
            raise PruningError(f"`spec.{name}` of {cls.__name__} must be a function or None. "
                               f"Received: {name}={getattr(spec, name)!r}.")
    _check_slices(cls, spec.slices)
    if spec.role == "produce":
        _check_produce(cls, spec)


def _check_slices(cls, slices) -> None:
    valid = isinstance(slices, dict) and all(
        isinstance(name, str) and isinstance(axes, dict) and
        all(isinstance(axis, int) and kind in ("in", "out", "mid") for axis, kind in axes.items())
        for name, axes in slices.items())
    if not valid:
        raise PruningError(f"`spec.slices` of {cls.__name__} must map weight names to {{axis: 'in' | 'out' | "
                           f"'mid'}}, e.g. {{'kernel': {{-2: 'in', -1: 'out'}}}}. Received: slices={slices!r}.")


def _check_produce(cls, spec: OpSpec) -> None:
    arguments = [name for name in inspect.signature(cls.__init__).parameters if name not in ("self", "kwargs")]
    if spec.width_key not in arguments:
        raise PruningError(f"A 'produce' spec needs `width_key` naming the argument of {cls.__name__}.__init__ "
                           f"(a key of its get_config()) that holds its number of output channels, e.g. "
                           f"width_key='filters'. Received: width_key={spec.width_key!r}; arguments: {arguments}.")
    if not any("out" in axes.values() for axes in spec.slices.values()):
        raise PruningError(f"A 'produce' spec needs `slices` naming the weights of {cls.__name__} whose axes follow "
                           f"its output channels, e.g. slices={{'kernel': {{-2: 'in', -1: 'out'}}, 'bias': "
                           f"{{0: 'out'}}}}. Received: slices={spec.slices!r}.")


def output_axes(layer, spec: OpSpec) -> dict:
    """``{weight name: output-channel axis}`` of ``layer``'s weights by ``spec.slices``.

    Raises:
        PruningError: a producing layer has weights but none sliced by its output channels.
    """
    names = [weight_short_name(w) for w in getattr(layer, "weights", ())]  # Keras ops have none
    axes = {n: axis for n in names for axis, role in spec.slices.get(n, {}).items() if role == "out"}
    if spec.role == "produce" and names and not axes:
        raise PruningError(f"No weight of {type(layer).__name__} layer {layer.name!r} is sliced by its output "
                           f"channels: its weights are {names}, its OpSpec slices {sorted(spec.slices)}. Name the "
                           "weights (`add_weight(..., name='kernel')`) as the `slices` given to register_layer.")
    return axes


def weight_short_name(weight) -> str:
    """``'kernel'`` for Keras 3's ``kernel`` and tf_keras' ``conv/kernel:0``."""
    return weight.name.rsplit("/", 1)[-1].split(":")[0]
