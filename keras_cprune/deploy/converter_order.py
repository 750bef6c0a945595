"""The TFLite converter's operator schedule of a Keras graph, replayed on its pruned variants.

The converter orders operators (hence TFLM tensor lifetimes and the greedy planner's tie-breaks)
by how the model was written, not by layer creation order nor channel counts. `converter_schedule`
converts the unpruned model once (random inputs calibrate: sizes do not depend on values), matches
each flatbuffer operator to an op of the Keras-graph lowering (`lowering.lower`) by type, inputs,
constant shapes and layer name, and records the order; `lowering.micro_graph` then emits any pruned
variant in that order. Flash follows from the same conversion: the flatbuffer's size plus the
change in constant data and per-channel quantization parameters.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from keras_cprune.graph.clone import as_trained, copy
from keras_cprune.graph.reader import Graph
from keras_cprune.deploy.layer_ops import dropped_constants
from keras_cprune.deploy.lowering import lower
from keras_cprune.graph.layers import registered_spec

# Per-channel quantization in the flatbuffer: a float32 scale and an int64 zero point.
FLASH_BYTES_PER_CHANNEL = 12
_COMMUTATIVE = {"ADD", "MUL", "MAXIMUM", "MINIMUM"}


@dataclass(frozen=True)
class Schedule:
    """Converter order of a graph's lowered ops (``op_order``) and activations (``act_order``),
    as indices into `lowering.lower`'s lists; ``exact=False`` (with ``reason``) when the flatbuffer
    could not be matched and the orders are the Keras graph's."""

    op_order: tuple
    act_order: tuple
    flatbuffer_bytes: int = 0
    constant_bytes: int = 0  # of the lowering matched, to price pruned variants' flash
    quant_channels: int = 0
    exact: bool = True
    reason: str = ""

    def flash(self, micro) -> int:
        """Flatbuffer bytes of a variant lowered to ``micro`` (a `MicroGraph`)."""
        constant = sum(t.nbytes for t in micro.tensors if t.constant)
        channels = sum(t.quant_channels for t in micro.tensors if t.constant)
        return (self.flatbuffer_bytes + constant - self.constant_bytes
                + FLASH_BYTES_PER_CHANNEL * (channels - self.quant_channels))


class _Mismatch(Exception):
    pass


def keras_order(low, reason: str) -> Schedule:
    """The Keras graph's own order, marked approximate with ``reason``."""
    return Schedule(tuple(range(len(low.ops))), tuple(range(len(low.acts))), exact=False, reason=reason)


def converter_schedule(model, graph, *, input_shape=None, per_channel_dense: bool = True,
                       assume_trained: bool = True) -> Schedule:
    """Convert ``model`` (a copy, trained-looking with ``assume_trained``, random calibration;
    ``per_channel_dense`` as `tflm_export.convert`'s) and match its operators to the lowering
    made with the same ``assume_trained``: an all-zero bias the converter drops changes the ops."""
    from tflm_export.convert import convert

    from tflm_export.micro.flatbuffer import graph_from_tflite


    low = lower(graph, assume_trained=assume_trained, per_channel_dense=per_channel_dense)
    shape = tuple(graph.tensors[graph.inputs[0]].shape) if input_shape is None else tuple(input_shape)
    if len(graph.inputs) != 1 or None in shape:
        return keras_order(low, "converter schedule needs one input of known shape")
    data = np.random.default_rng(0).uniform(0, 1, (4,) + shape).astype("float32")
    try:
        converted = copy(model, graph)
        tflite = convert(as_trained(converted) if assume_trained else converted, data, num_samples=4,
                         per_channel_dense=per_channel_dense)
    except Exception as exc:  # the estimate stays available; it says why it is approximate
        return keras_order(low, f"converter schedule unavailable ({type(exc).__name__}: {str(exc)[:200]})")
    try:
        return match(low, graph_from_tflite(tflite), len(tflite))
    except _Mismatch as exc:
        return keras_order(low, f"converter schedule unmatched: {exc}")


def match(low, converted, flatbuffer_bytes: int) -> Schedule:
    """Match the converted `MicroGraph`'s ops to ``low``'s (a `lowering._Lowering`) in run order."""
    refs = {("a", i): i for i in range(len(low.acts))}
    of_tensor = {}  # converted tensor index -> lowered activation index
    for t, key in zip(converted.inputs, low.graph.inputs):
        of_tensor[t] = refs[low.of_key[key]]
    free = list(range(len(low.ops)))
    op_order = []
    for position, op in enumerate(converted.ops):
        j = _pick(low, converted, op, of_tensor, free, position)
        free.remove(j)
        op_order.append(j)
        for t, ref in zip(op.outputs, low.ops[j][2]):
            of_tensor[t] = refs[ref]
    if free:
        raise _Mismatch(f"{len(free)} lowered op(s) absent from the flatbuffer, first "
                        f"{low.ops[free[0]][0]} of layer {low.ops[free[0]][3]!r}")
    act_order = [of_tensor[t] for t in sorted(of_tensor)]
    missing = sorted(set(range(len(low.acts))) - set(act_order))
    if missing:
        raise _Mismatch(f"{len(missing)} lowered activation(s) never produced by the flatbuffer's ops")
    constants = [t for t in low.consts if t.constant]  # not an LSTM's state variables
    return Schedule(tuple(op_order), tuple(act_order), flatbuffer_bytes, sum(t.nbytes for t in constants),
                    sum(t.quant_channels for t in constants))


def _pick(low, converted, op, of_tensor: dict, free: list, position: int) -> int:
    """The free lowered op that ``op`` (converted, at ``position``) is."""
    activations = [t for t in op.inputs if t >= 0 and not converted.tensors[t].constant
                   and not converted.tensors[t].variable]
    unknown = [t for t in activations if t not in of_tensor]
    if unknown:
        raise _Mismatch(f"op #{position} {op.op} reads tensor {converted.tensors[unknown[0]].name!r} "
                        "that no matched op produced")
    wanted = [of_tensor[t] for t in activations]
    constants = sorted(converted.tensors[t].shape for t in op.inputs if t >= 0 and converted.tensors[t].constant)
    candidates = []
    for j in free:
        name, inputs, _, _ = low.ops[j]
        if name != op.op:
            continue
        lowered = [r[1] for r in inputs if r[0] == "a"]
        if lowered == wanted or name in _COMMUTATIVE and sorted(lowered) == sorted(wanted):
            candidates.append(j)
    if not candidates:
        raise _Mismatch(f"op #{position} {op.op} (output {_name(converted, op)!r}) has no counterpart in the "
                        "Keras-graph lowering")
    if len(candidates) > 1:
        same = [j for j in candidates if sorted(low.consts[r[1]].shape for r in low.ops[j][1]
                                                if r[0] == "c" and low.consts[r[1]].constant) == constants]
        candidates = same or candidates
    if len(candidates) > 1:
        named = [j for j in candidates if _names_layer(_name(converted, op), low.ops[j][3])]
        candidates = named or candidates
    return candidates[0]


def _name(converted, op) -> str:
    return converted.tensors[op.outputs[0]].name if op.outputs else ""


def _names_layer(tensor_name: str, layer: str) -> bool:
    """Whether a converter tensor name (``model/conv_1/BiasAdd;...``) is that of ``layer``'s ops."""
    layer = re.escape(layer.split("#")[0])
    return re.search(rf"(^|[/;]){layer}(_\d+)?/", tensor_name) is not None


_SCHEDULES: dict = {}


def schedule_of(model, graph: Graph, per_channel_dense: bool = True, assume_trained: bool = True):
    """The converter `Schedule` of ``model`` (read as ``graph``, converted with ``per_channel_dense``
    as `tflm_export.convert`'s) for the lowering made with ``assume_trained``, cached by
    architecture and the all-zero constants the converter drops."""
    dropped = dropped_constants(graph, assume_trained)
    key = (fingerprint(graph), per_channel_dense, dropped)
    if key not in _SCHEDULES:
        if len(_SCHEDULES) >= 64:
            _SCHEDULES.pop(next(iter(_SCHEDULES)))
        _SCHEDULES[key] = converter_schedule(model, graph, per_channel_dense=per_channel_dense,
                                             assume_trained=not dropped)
    return _SCHEDULES[key]


def fingerprint(graph: Graph) -> str:
    """A string equal for graphs of the same architecture (layers, wiring, shapes, every setting of
    each layer, and the `OpSpec` registered for a custom layer: registering another one lowers it
    differently)."""
    nodes = [(n.name, n.class_name, n.inputs, n.outputs, sorted(map(repr, n.attrs.items())), _settings(n.layer),
              repr(registered_spec(type(n.layer)))) for n in graph.nodes]
    shapes = sorted((k, t.shape) for k, t in graph.tensors.items())
    return repr((graph.keras.__name__, nodes, shapes, graph.inputs, graph.outputs))


def _settings(layer) -> str:
    """``layer``'s whole ``get_config()`` but its name: any setting may change the converted graph
    (an LSTM's ``unroll``, a dtype policy...), not only those the formulas read (``node.attrs``)."""
    try:
        config = dict(layer.get_config())
    except Exception:  # a custom layer without get_config(): its class and attrs are all there is
        return ""
    config.pop("name", None)
    return repr(sorted(config.items(), key=lambda item: str(item[0])))
