"""Predict the minimal TFLite Micro tensor arena of an int8 model without running TFLM.

The arena holds two things (``micro_allocator.cc``): a *head* of non-persistent buffers laid out
by ``GreedyMemoryPlanner`` (activations and kernel scratch buffers, which overlap in time) and a
*tail* of persistent allocations that grows down from the arena end (interpreter objects,
``TfLiteEvalTensor`` array, nodes, builtin options, kernel ``OpData``, per-channel arrays, the
input/output ``TfLiteTensor`` structs). ``predict_arena`` replays that allocation sequence with
its alignments and returns the smallest arena size for which every step succeeds.

Constants are those of the PyPI ``tflite-micro`` runtime (x86-64, reference kernels, built
with ``USE_TFLM_COMPRESSION``, ``RecordingMicroAllocator``); a 32-bit MCU build has smaller
structs. The planner part (``PlannedTensor``, ``greedy_offsets``) is framework-free.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

__all__ = ["PlannedTensor", "greedy_offsets", "greedy_arena_bytes", "TensorSpec", "OpSpec",
           "MicroGraph", "planned_tensors", "ArenaPrediction", "predict_arena",
           "graph_from_tflite", "predict_arena_from_tflite"]

BUFFER_ALIGNMENT = 16  # MicroArenaBufferAlignment(): planner sizes and kernel buffers, bytes


def _align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def _align_down(value: int, alignment: int) -> int:
    return value // alignment * alignment


# --------------------------------------------------------------------------- planner
@dataclass(frozen=True)
class PlannedTensor:
    """A non-persistent buffer of ``size_bytes`` alive from time ``first_op`` to ``last_op``.

    Times are TFLM allocation scopes: 0 is "before the first op" (model inputs are created
    there), op ``i`` runs at time ``i + 1``; both ends are inclusive.
    """

    size_bytes: int
    first_op: int
    last_op: int
    name: str = ""


def greedy_offsets(tensors) -> list:
    """Arena offsets (bytes) that TFLM's GreedyMemoryPlanner gives ``tensors``, in input order.

    Sizes are first rounded up to 16 bytes (``CreatePlan``). Buffers are placed largest first;
    ties go to the buffer added *last* (the planner fills its sort array from the tail and then
    bubble-sorts stably). Each buffer goes in the first gap, scanning placed buffers whose
    lifetime overlaps its own in offset order, that is at least as large as it is.
    """
    sizes = [_align_up(t.size_bytes, BUFFER_ALIGNMENT) for t in tensors]
    order = sorted(reversed(range(len(tensors))), key=lambda i: -sizes[i])
    offsets = [0] * len(tensors)
    placed = []  # (offset, index), kept sorted by offset; equal offsets in insertion order
    for i in order:
        first, last = tensors[i].first_op, tensors[i].last_op
        candidate = 0
        for offset, j in placed:
            if tensors[j].first_op > last or first > tensors[j].last_op:
                continue  # not alive at the same time
            if offset - candidate >= sizes[i]:
                break
            candidate = max(candidate, offset + sizes[j])
        offsets[i] = candidate
        position = next((k for k, (o, _) in enumerate(placed) if o > candidate and k > 0),
                        len(placed))
        if placed and placed[0][0] > candidate:
            position = 0
        placed.insert(position, (candidate, i))
    return offsets


def greedy_arena_bytes(tensors) -> int:
    """Bytes of the head section GreedyMemoryPlanner needs for ``tensors`` (max offset + size)."""
    offsets = greedy_offsets(tensors)
    return max((o + _align_up(t.size_bytes, BUFFER_ALIGNMENT) for o, t in zip(offsets, tensors)),
               default=0)


# --------------------------------------------------------------------------- neutral graph
@dataclass(frozen=True)
class TensorSpec:
    """A tensor: ``shape``, bytes per element, constant (weights in flash) or not, and how many
    quantization scales it carries (0: no quantization params)."""

    shape: tuple
    itemsize: int = 1
    constant: bool = False
    quant_channels: int = 1
    variable: bool = False

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.itemsize


@dataclass(frozen=True)
class OpSpec:
    """One operator: TFLite builtin name (``"CONV_2D"``) and tensor indices (-1: omitted)."""

    op: str
    inputs: tuple
    outputs: tuple


@dataclass(frozen=True)
class MicroGraph:
    """What the TFLM allocator sees of a single-subgraph model: tensors, ops in run order."""

    tensors: tuple
    ops: tuple
    inputs: tuple
    outputs: tuple


def planned_tensors(graph: MicroGraph) -> list:
    """Planner input of ``graph``: non-constant tensors (index order), then scratch buffers.

    Lifetimes follow ``AllocationInfoBuilder::MarkAllocationLifetimes``: model inputs are
    created at time 0, a tensor lives from its producer to its last consumer, model outputs
    to the last op; a kernel's scratch buffers live only while their op runs.
    """
    first, last = {}, {}
    for t in graph.inputs:
        first.setdefault(t, 0)
        last[t] = 0
    for time, op in enumerate(graph.ops, start=1):
        for t in op.outputs:
            first.setdefault(t, time)
        for t in tuple(op.inputs) + tuple(op.outputs):
            if t >= 0:
                last[t] = time
    for t in graph.outputs:
        first.setdefault(t, len(graph.ops))
        last[t] = len(graph.ops)
    result = [PlannedTensor(spec.nbytes, first.get(i, -1), last.get(i, -1), f"t{i}")
              for i, spec in enumerate(graph.tensors)
              if not spec.constant and not spec.variable and spec.nbytes]
    for time, op in enumerate(graph.ops, start=1):
        for k, size in enumerate(_kernel(op).scratch(graph, op)):
            result.append(PlannedTensor(size, time, time, f"{op.op.lower()}{time - 1}/scratch{k}"))
    return result


# --------------------------------------------------------------------------- kernel table
@dataclass(frozen=True)
class _Kernel:
    """Arena use of one reference kernel: builtin options struct (size, align) from the
    flatbuffer parser, OpData size from Init, per-channel/dims buffers from Prepare and
    scratch buffer requests (bytes); ``temp`` = tensor accesses during Prepare."""

    params: tuple = None
    op_data: int = 0
    persistent: object = lambda g, op: ()
    scratch: object = lambda g, op: ()
    temp: object = None


def _t(g, op, k, io="inputs"):
    ids = getattr(op, io)
    return g.tensors[ids[k]] if k < len(ids) and ids[k] >= 0 else None


def _per_channel(dim):  # multiplier + shift arrays, int32 per output channel of the filter
    return lambda g, op: (4 * _t(g, op, 1).shape[dim],) * 2


def _fc_arrays(g, op):
    return (4 * _t(g, op, 1).quant_channels,) * 2 if _t(g, op, 1).quant_channels > 1 else ()


def _stretch_dims(g, op):  # RESHAPE: output dims copied to the tail if one is -1
    shape = _t(g, op, 0, "outputs").shape
    return (4 + 4 * len(shape),) if -1 in shape else ()


def _out_dims(g, op):
    return (4 + 4 * len(_t(g, op, 0, "outputs").shape),)


def _mean_scratch(g, op):
    inp, axis, out = _t(g, op, 0), _t(g, op, 1), _t(g, op, 0, "outputs")
    acc = (4 * math.prod(out.shape),) if inp.itemsize <= 2 else ()
    return acc + (4 * len(inp.shape), 4 * math.prod(axis.shape))


def _conv_temp(op):  # ConvPrepare: out, in, filter; CalculateOpDataConv: in, filter, bias, out
    i, o = op.inputs, op.outputs
    return (o[0], i[0], i[1], i[0], i[1], i[2] if len(i) > 2 else -1, o[0])


_POOL, _CONV = _Kernel((40, 4), 32), _Kernel((28, 4), 80, _per_channel(0), temp=_conv_temp)
_KERNELS = {
    "CONV_2D": _CONV,
    "DEPTHWISE_CONV_2D": _Kernel((28, 4), 80, _per_channel(3), temp=_conv_temp),
    "FULLY_CONNECTED": _Kernel((32, 8), 72, _fc_arrays),
    "TRANSPOSE_CONV": _Kernel((20, 4), 88, _per_channel(0),
                              lambda g, op: (4 * math.prod(_t(g, op, 0, "outputs").shape),)),
    "MAX_POOL_2D": _POOL, "AVERAGE_POOL_2D": _POOL,
    "ADD": _Kernel((8, 4), 60), "SUB": _Kernel((8, 4), 52), "MUL": _Kernel((4, 4), 36),
    "CONCATENATION": _Kernel((8, 4), 80),
    "RESHAPE": _Kernel((36, 4), 0, _stretch_dims), "SQUEEZE": _Kernel((36, 4)),
    "EXPAND_DIMS": _Kernel(), "TRANSPOSE": _Kernel(), "MAXIMUM": _Kernel(), "MINIMUM": _Kernel(),
    "SHAPE": _Kernel((4, 4)), "PACK": _Kernel((8, 4)), "UNPACK": _Kernel((8, 4)),
    "STRIDED_SLICE": _Kernel((24, 4), 84),
    "MEAN": _Kernel((1, 1), 44, scratch=_mean_scratch),
    "SOFTMAX": _Kernel((4, 4), 80),
    "QUANTIZE": _Kernel(None, 32), "DEQUANTIZE": _Kernel(None, 32),
    "RELU": _Kernel(None, 28), "RELU6": _Kernel(None, 8), "LEAKY_RELU": _Kernel((4, 4), 24),
    "LOGISTIC": _Kernel(None, 16), "TANH": _Kernel(None, 16), "HARD_SWISH": _Kernel(None, 20),
    "PRELU": _Kernel(None, 28), "PAD": _Kernel(None, 56), "PADV2": _Kernel(None, 56),
    "RESIZE_NEAREST_NEIGHBOR": _Kernel((2, 1)), "RESIZE_BILINEAR": _Kernel((2, 1)),
    "SPACE_TO_DEPTH": _Kernel((4, 4), 0, _out_dims), "DEPTH_TO_SPACE": _Kernel((4, 4), 0, _out_dims),
}


def _kernel(op: OpSpec) -> _Kernel:
    return _KERNELS.get(op.op, _Kernel())


# --------------------------------------------------------------------------- overhead model
# Tail objects of the Python runtime before the model is read: RecordingSingleArenaBuffer-
# Allocator, GreedyMemoryPlanner, RecordingMicroAllocator, MicroBuiltinDataAllocator (448 + 16),
# then SubgraphAllocations (24 per subgraph). Fitted on print_allocations(); all 8-aligned.
RUNTIME_OBJECTS_BYTES = 464
SUBGRAPH_ALLOCATIONS_BYTES = 24
EVAL_TENSOR_BYTES = 24            # TfLiteEvalTensor, one per tensor of the subgraph
NODE_BYTES = 64                   # NodeAndRegistration, one per op
TFLITE_TENSOR_BYTES = 64          # TfLiteTensor (TF_LITE_STATIC_MEMORY)
AFFINE_QUANT_BYTES = 24           # TfLiteAffineQuantization
SCRATCH_REQUEST_BYTES = 16        # internal::ScratchBufferRequest, 12 reserved per op
MAX_SCRATCH_PER_OP = 12
ALLOCATION_INFO_BYTES = 32        # AllocationInfo, one per tensor and scratch buffer
PLANNER_BYTES_PER_BUFFER = 40     # GreedyMemoryPlanner::per_buffer_size()


def _tensor_struct(spec: TensorSpec) -> list:
    """(size, align) of a TfLiteTensor copy with its quantization params (zero points copied)."""
    allocs = [(TFLITE_TENSOR_BYTES, 8)]
    if spec.quant_channels:
        allocs += [(AFFINE_QUANT_BYTES, 8), (4 + 4 * spec.quant_channels, 4)]
    return allocs


@dataclass(frozen=True)
class ArenaPrediction:
    """Predicted minimal ``arena_size`` (bytes) and its parts.

    ``planner_bytes`` is the head (GreedyMemoryPlanner); ``persistent_bytes`` the tail with
    alignment padding for an arena of ``total_bytes``; ``peak_op`` is the op running when the
    head reaches its top; ``per_op`` gives (op name, live bytes, head top) per op; ``binding``
    names the allocation phase that sets the minimum; ``unknown_ops`` were modeled without
    OpData, so the prediction may be low for them.
    """

    total_bytes: int
    planner_bytes: int
    persistent_bytes: int
    peak_op: int
    binding: str
    per_op: tuple = field(default=(), repr=False)
    unknown_ops: tuple = ()

    def to_dict(self) -> dict:
        return asdict(self)


def _simulate(graph: MicroGraph, arena: int, head: int):
    """Replay the allocations of an ``arena``-byte arena in runtime order.

    Returns (failing phase or None, final tail offset). The tail grows down from ``arena``;
    the head holds 16-byte scratch requests (12 spare per op) while kernels prepare, then
    the planner's work arrays, then the ``head``-byte plan.
    """
    tail = arena

    def alloc(size, align):
        nonlocal tail
        tail = _align_down(tail - size, align)

    alloc(RUNTIME_OBJECTS_BYTES + SUBGRAPH_ALLOCATIONS_BYTES, 8)
    alloc(EVAL_TENSOR_BYTES * len(graph.tensors), 8)
    alloc(NODE_BYTES * len(graph.ops), 8)
    kernels = [_kernel(op) for op in graph.ops]
    for kernel in kernels:  # flatbuffer parsers: builtin options structs
        if kernel.params:
            alloc(*kernel.params)
    for kernel in kernels:  # Init: OpData
        if kernel.op_data:
            alloc(kernel.op_data, 16)
    requests = 0
    for op, kernel in zip(graph.ops, kernels):  # Prepare: persistent arrays, temp tensors
        for size in kernel.persistent(graph, op):
            alloc(size, 16)
        temp = SCRATCH_REQUEST_BYTES * (requests + MAX_SCRATCH_PER_OP)
        ids = kernel.temp(op) if kernel.temp else tuple(op.inputs) + tuple(op.outputs)
        for t in (t for t in ids if t >= 0):
            for size, align in _tensor_struct(graph.tensors[t]):
                temp = _align_up(temp, align) + size
        if temp > tail:
            return "prepare", tail
        requests += len(kernel.scratch(graph, op))
    if requests:
        alloc(8 * requests, 8)  # ScratchBufferHandle array
    for spec in graph.tensors:  # AllocateVariables
        if spec.variable:
            alloc(spec.nbytes, 16)
    temp = _align_up(SCRATCH_REQUEST_BYTES * (requests + MAX_SCRATCH_PER_OP), 8) + 8
    temp = _align_up(temp, 8) + ALLOCATION_INFO_BYTES * (len(graph.tensors) + requests)
    buffers = len(planned_tensors(graph))
    if _align_down(tail, 16) - _align_up(temp, 16) < PLANNER_BYTES_PER_BUFFER * buffers:
        return "planning", tail
    for ids in (graph.inputs, graph.outputs):  # MicroInterpreter: input/output TfLiteTensors
        alloc(8 * len(ids), 16)
        for t in ids:
            for size, align in _tensor_struct(graph.tensors[t]):
                alloc(size, align)
    return ("io_tensors" if tail < head else None), tail


def predict_arena(graph: MicroGraph) -> ArenaPrediction:
    """Smallest ``arena_size`` (bytes) with which the TFLM Python runtime allocates ``graph``."""
    planned = planned_tensors(graph)
    offsets = greedy_offsets(planned)
    head = max((o + _align_up(t.size_bytes, 16) for o, t in zip(offsets, planned)), default=0)
    low, high = head, head + 1024
    while _simulate(graph, high, head)[0]:
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if not _simulate(graph, middle, head)[0] else (middle, high)
    binding = _simulate(graph, high - 1, head)[0] or "io_tensors"
    per_op = []
    for time, op in enumerate(graph.ops, start=1):
        alive = [(o, t) for o, t in zip(offsets, planned) if t.first_op <= time <= t.last_op]
        per_op.append((op.op, sum(_align_up(t.size_bytes, 16) for _, t in alive),
                       max((o + _align_up(t.size_bytes, 16) for o, t in alive), default=0)))
    peak = max(range(len(per_op)), key=lambda i: per_op[i][2]) if per_op else -1
    unknown = tuple(sorted({op.op for op in graph.ops if op.op not in _KERNELS}))
    return ArenaPrediction(high, head, high - _simulate(graph, high, head)[1], peak, binding,
                           tuple(per_op), unknown)


# --------------------------------------------------------------------------- flatbuffer
_ITEMSIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 16, 11: 8, 12: 8, 13: 4,
             14: 4, 15: 2, 16: 4, 17: 1, 18: 16}  # schema TensorType -> bytes (INT4 stored as 1)


def _schema():
    try:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    except ImportError:  # pragma: no cover - TF's copy of the same generated schema
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def graph_from_tflite(tflite_bytes: bytes) -> MicroGraph:
    """Read subgraph 0 of a ``.tflite`` flatbuffer into a ``MicroGraph`` (no weights copied)."""
    from .errors import ModelFileError

    schema = _schema()
    try:
        model = schema.Model.GetRootAs(bytearray(tflite_bytes), 0)
        subgraph = model.Subgraphs(0)
    except Exception as exc:  # flatbuffers raises bare struct/index errors
        raise ModelFileError(f"Expected a .tflite flatbuffer. Could not read it: {exc}") from exc
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    tensors = []
    for i in range(subgraph.TensorsLength()):
        t = subgraph.Tensors(i)
        buffer = model.Buffers(t.Buffer())
        q = t.Quantization()
        channels = q.ScaleLength() if q is not None and q.ZeroPointLength() else 0
        tensors.append(TensorSpec(tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else (),
                                  _ITEMSIZE.get(t.Type(), 1),
                                  buffer is not None and buffer.DataLength() > 0,
                                  channels, bool(t.IsVariable())))
    ops = []
    for i in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        ops.append(OpSpec(names.get(builtin, str(builtin)),
                          tuple(int(x) for x in op.InputsAsNumpy()) if op.InputsLength() else (),
                          tuple(int(x) for x in op.OutputsAsNumpy()) if op.OutputsLength() else ()))
    return MicroGraph(tuple(tensors), tuple(ops),
                      tuple(int(x) for x in subgraph.InputsAsNumpy()),
                      tuple(int(x) for x in subgraph.OutputsAsNumpy()))


def predict_arena_from_tflite(tflite_bytes: bytes) -> ArenaPrediction:
    """Predicted minimal TFLM arena (bytes) of an int8 ``.tflite`` model given as bytes."""
    return predict_arena(graph_from_tflite(tflite_bytes))
