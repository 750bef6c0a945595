"""Lower a Keras graph to the operators the TFLite converter emits for its int8 model.

`lower` walks the Keras graph: int8 input/output, BatchNorm folded into the preceding conv,
ReLU/ReLU6 fused into conv/dense/add/..., Flatten as SHAPE-STRIDED_SLICE-PACK-RESHAPE (tf_keras,
or a model with an LSTM, converted at batch 1: one RESHAPE), an LSTM as UNIDIRECTIONAL_SEQUENCE_LSTM,
global average pooling as MEAN, SeparableConv as DEPTHWISE + CONV, the Conv1D family as EXPAND_DIMS,
the 2-D op and RESHAPE, an n-way Add as a chain of binary ADDs, an all-zero Dense bias dropped
unless ``assume_trained``. Each layer type's ops come from `layer_ops` (a registered layer's from
its `OpSpec`'s ``lower``); this module holds the builder, the folding and the walk. `micro_graph` puts the
ops in the converter's order (a `Schedule`) into the `MicroGraph` that tflm_export's planner
replays. Layers without a known lowering are listed as approximated, never fail.
"""
from __future__ import annotations

from dataclasses import replace

from tflm_export.micro.op_graph import MicroGraph, MicroOp, MicroTensor

from keras_cprune.graph.reader import Graph
from keras_cprune.deploy.layer_ops import lowering_of


class _Lowering:
    """The builder an `OpSpec`'s ``lower`` emits through: tensors are refs, ``("c", i)`` for a
    constant, ``("a", i)`` for an activation, ``("none", -1)`` for an absent optional input."""

    def __init__(self, graph: Graph, shapes: dict, assume_trained: bool, per_channel_dense: bool = True):
        self.graph, self.shapes, self.assume_trained = graph, shapes, assume_trained
        self.per_channel_dense = per_channel_dense  # else Dense weights are quantized per tensor
        self.consts: list[MicroTensor] = []
        self.acts: list[tuple] = []  # (MicroTensor, graph key or None)
        self.ops: list[tuple] = []  # (op name, inputs, outputs, node name) with ("c", i) / ("a", i) refs
        self.of_key: dict[int, tuple] = {}
        self.shared: dict = {}
        self.expanded: dict = {}  # squeezed 1-D activation -> the 4-D tensor it was reshaped from
        self.wide: set = set()  # 4-D outputs of 1-D layers read by 1-D layers only, at batch 1 (`layer_ops.one_d`)
        self.folded: set = set()  # names of the layers folded into their producer (`_foldable`)
        self.fuses_relu: set = set()  # outputs of ops not in `layer_ops`' fusing list that fuse a ReLU
        self.rectified: dict = {}  # activation ref -> "relu" or "relu6" it has had (fused or an op)
        self.approximated: list[str] = []
        self.unused: list[MicroTensor] = []  # in the flatbuffer, read by no op (an LSTM's calibration intermediates)
        # a model with an LSTM is converted at batch 1 (the converter fuses an LSTM only there): shapes fold
        self.batch_one = any(node.class_name == "LSTM" for node in graph.nodes)
        self.windows: dict = {}  # output ref of a conv or pooling op -> its `Window`

    def shape(self, key: int) -> tuple:
        """Shape of graph tensor ``key`` with the batch axis, (1, ...), as pruned by ``shapes``."""
        return (1,) + tuple(self.shapes.get(key, self.graph.tensors[key].shape))

    def const(self, shape, itemsize=1, quant=0, share=None) -> tuple:
        """A constant of ``itemsize``-byte elements with ``quant`` quantization channels; equal
        ``share`` keys are one tensor, as the converter stores equal constants once."""
        if share is not None and share in self.shared:
            return self.shared[share]
        self.consts.append(MicroTensor(tuple(shape), itemsize, True, quant))
        ref = ("c", len(self.consts) - 1)
        if share is not None:
            self.shared[share] = ref
        return ref

    def state(self, shape, itemsize=1) -> tuple:
        """A variable tensor (an LSTM's output or cell state): persistent, in the arena's tail."""
        self.consts.append(MicroTensor(tuple(shape), itemsize, False, 1, True))
        return ("c", len(self.consts) - 1)

    def act(self, shape, key=None, itemsize=1, quant=1) -> tuple:
        self.acts.append((MicroTensor(tuple(shape), itemsize, False, quant), key))
        return ("a", len(self.acts) - 1)

    def op(self, name, inputs, out_shape, node, key=None, itemsize=1, quant=1, window=None) -> tuple:
        """Emit op ``name`` of layer ``node`` (its name) reading ``inputs``, with the `Window` of a
        convolution or pooling op; return its output ref."""
        out = self.act(out_shape, key, itemsize, quant)
        self.ops.append((name, tuple(inputs), (out,), node))
        if window is not None:
            self.windows[out] = window
        return out

    def weighted(self, name, node, x, filt_shape, channels, bias=True, shape=None, per_channel=True,
                 window=None) -> tuple:
        """Emit a weighted op (CONV_2D, FULLY_CONNECTED...): ``x``, an int8 filter of ``filt_shape``
        and an int32 bias (absent without ``bias``), quantized per channel over ``channels`` (one
        scale without ``per_channel``)."""
        quant = channels if per_channel else 1
        filt = self.const(filt_shape, 1, quant)
        inputs = [x, filt] + ([self.const((channels,), 4, quant)] if bias else [("none", -1)])
        return self.op(name, inputs, shape or self.shape(node.outputs[0]), node.name, window=window)


def _lower_node(low: _Lowering, node) -> tuple | None:
    """Emit the TFLite ops of ``node`` by `layer_ops.lowering_of` (`layer_ops.unknown` when it has
    none); return its output ref (None: alias of its input, or folded into its producer)."""
    if node.name in low.folded:
        return None
    x = low.of_key.get(node.inputs[0]) if node.inputs else None
    in_shape = low.shape(node.inputs[0]) if node.inputs else ()
    return lowering_of(node)(low, node, x, in_shape, low.shape(node.outputs[0]))


_WEIGHTED = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")


def _sole_weighted_producer(graph: Graph, node, weighted: tuple = _WEIGHTED) -> bool:
    source = graph.tensors[node.inputs[0]]
    producer = graph.node(source.producer) if source.producer else None
    return bool(producer and producer.class_name in weighted and len(source.consumers) == 1
                and producer.attrs.get("activation", "linear") == "linear")


def _foldable(graph: Graph) -> set:
    """Layers the converter folds away: a BatchNorm, or a Keras op adding a scalar (``x + 3.0``),
    directly after a conv/dense (a BatchNorm: or transposed conv) with no other consumer (into its
    filter and bias), and a ZeroPadding2D feeding only a valid-padding conv (becomes its padding)."""
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
        if node.class_name == "BatchNormalization" and _sole_weighted_producer(graph, node,
                                                                                 _WEIGHTED + ("Conv2DTranspose",)):
            folded.add(node.name)
    return folded


def lower(graph: Graph, shapes: dict | None = None, *, assume_trained: bool = False,
          per_channel_dense: bool = True) -> _Lowering:
    """The converter's ops of ``graph`` (tensor shapes overridden by ``shapes``) in Keras graph
    order; with ``assume_trained``, as the model will be once trained (no all-zero Dense bias);
    ``per_channel_dense`` as `tflm_export.convert`'s. The op and activation lists have the same
    structure for any pruned ``shapes``."""
    low = _Lowering(graph, shapes or {}, assume_trained, per_channel_dense)
    low.folded = _foldable(graph)
    for key in graph.inputs:
        low.of_key[key] = low.act(low.shape(key), key)
    for node in graph.nodes:
        if node.is_input:
            continue
        ref = _lower_node(low, node)
        low.of_key[node.outputs[0]] = low.of_key[node.inputs[0]] if ref is None else ref
        if ref is not None:
            spec, _ = low.acts[ref[1]]
            low.acts[ref[1]] = (spec, node.outputs[0])
    _drop_unused_constants(low)
    return low


def _drop_unused_constants(low: _Lowering) -> None:
    """Constants no op reads (a lowering merged the op that did) are not in the flatbuffer."""
    used = sorted({r[1] for _, inputs, _, _ in low.ops for r in inputs if r[0] == "c"})
    if len(used) == len(low.consts):
        return
    new = {old: i for i, old in enumerate(used)}
    low.consts = [low.consts[i] for i in used]
    low.ops = [(name, tuple(("c", new[r[1]]) if r[0] == "c" else r for r in inputs), outputs, layer)
               for name, inputs, outputs, layer in low.ops]


def micro_graph(graph: Graph, shapes: dict | None = None, *, assume_trained: bool = False,
                per_channel_dense: bool = True, schedule=None) -> tuple:
    """Lower ``graph`` (see `lower`) to the `MicroGraph` TFLM sees: ops and activations in the
    converter's order when a `Schedule` of ``graph`` is given, else in Keras graph order.

    Returns ``(MicroGraph, {micro tensor index: graph tensor key}, {op index: layer name},
    approximated layer names)``.
    """
    low = lower(graph, shapes, assume_trained=assume_trained, per_channel_dense=per_channel_dense)
    if schedule is not None and (len(schedule.op_order), len(schedule.act_order)) != (len(low.ops), len(low.acts)):
        schedule = _unfitting(schedule, low)
    inputs = [low.of_key[k] for k in graph.inputs]
    acts = list(range(len(low.acts))) if schedule is None else list(schedule.act_order)
    op_order = list(range(len(low.ops))) if schedule is None else list(schedule.op_order)
    order = inputs + [("c", i) for i in range(len(low.consts))] + \
        [("a", i) for i in acts if ("a", i) not in inputs]
    index = {ref: i for i, ref in enumerate(order)}
    index[("none", -1)] = -1
    tensors = tuple(low.consts[r[1]] if r[0] == "c" else low.acts[r[1]][0] for r in order) + tuple(low.unused)
    ops = tuple(MicroOp(name, tuple(index[r] for r in ins), tuple(index[r] for r in outs), low.windows.get(outs[0]))
                for name, ins, outs, _ in (low.ops[j] for j in op_order))
    keys = {index[("a", i)]: key for i, (_, key) in enumerate(low.acts) if key is not None}
    layers = {i: low.ops[j][3] for i, j in enumerate(op_order)}
    micro = MicroGraph(tensors, ops, tuple(range(len(inputs))), tuple(index[low.of_key[k]] for k in graph.outputs))
    approximated = tuple(low.approximated) + (() if schedule is None or schedule.exact else (schedule.reason,))
    return micro, keys, layers, approximated


def _unfitting(schedule, low):
    """The Keras graph order in place of a ``schedule`` made for another lowering (another
    ``assume_trained`` or weights), which cannot order this one's ops: approximate, and why."""
    return replace(schedule, op_order=tuple(range(len(low.ops))), act_order=tuple(range(len(low.acts))), exact=False,
                   reason=f"converter schedule of another lowering ({len(schedule.op_order)} ops, not {len(low.ops)})")
