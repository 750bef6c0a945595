"""Predict the minimal TFLite Micro tensor arena of an int8 model without running TFLM.

The arena (``micro_allocator.cc``) has a *head* of non-persistent buffers laid out by
``GreedyMemoryPlanner`` (activations and kernel scratch buffers, overlapping in time) and a
*tail* of persistent allocations growing down from the arena end (interpreter objects,
``TfLiteEvalTensor`` array, nodes, builtin options, kernel ``OpData``, per-channel arrays,
the input/output ``TfLiteTensor`` structs). ``predict_arena`` replays that allocation
sequence with its alignments and returns the smallest arena size for which every step fits.

Constants are those of the PyPI ``tflite-micro`` runtime (x86-64, reference kernels, built
with ``USE_TFLM_COMPRESSION``, ``RecordingMicroAllocator``, arena from ``new[]`` so 16-byte
aligned); a 32-bit MCU build has smaller structs. ``PlannedTensor``/``greedy_offsets`` and
``MicroGraph`` are framework-free, so a Keras graph can feed them instead of a flatbuffer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from tflm_export.arena import ArenaFigure
from tflm_export.micro.flatbuffer import graph_from_tflite
from tflm_export.micro.op_graph import MicroGraph, MicroOp, MicroTensor  # noqa: F401 (annotations)

__all__ = ["align", "PlannedTensor", "greedy_offsets", "greedy_arena_bytes", "planned_tensors", "AllocatorReplay",
           "replay_allocations", "alive_at", "predict_arena", "predict_arena_from_tflite"]

BUFFER_ALIGNMENT = 16  # MicroArenaBufferAlignment(), bytes; also the step TFLM arenas are measured in


def align(nbytes: int, alignment: int = BUFFER_ALIGNMENT) -> int:
    """Round up to a multiple of ``alignment``: by default TFLM's 16-byte buffer alignment.

    A predicted arena compares with a measured one (`runtime.runner.find_min_arena`) as ``align(bytes)``.

    Args:
        nbytes: a size in bytes.
        alignment: the step in bytes.

    Returns:
        The smallest multiple of ``alignment`` that is at least ``nbytes``.
    """
    return -(-nbytes // alignment) * alignment


def _align_down(value: int, alignment: int) -> int:
    return value // alignment * alignment


# --------------------------------------------------------------------------- planner
@dataclass(frozen=True)
class PlannedTensor:
    """A non-persistent buffer of ``size_bytes`` alive from time ``first_op`` to ``last_op``
    (inclusive TFLM allocation scopes: 0 is before the first op, op ``i`` runs at ``i + 1``)."""
    size_bytes: int
    first_op: int
    last_op: int
    name: str = ""


def greedy_offsets(tensors) -> list:
    """Head offsets (bytes) GreedyMemoryPlanner gives ``tensors``, in the order given.

    Sizes are rounded up to 16 bytes (``CreatePlan``). Buffers are placed largest first, equal
    sizes the one added *last* first (the planner fills its sort array from the end, then
    bubble-sorts stably). Each goes into the first gap large enough between the already
    placed buffers whose lifetime overlaps its own, scanned in offset order; else on top.
    """
    sizes = [align(t.size_bytes) for t in tensors]
    order = sorted(reversed(range(len(tensors))), key=lambda i: -sizes[i])
    offsets = [0] * len(tensors)
    placed = []  # (offset, index) in offset order; equal offsets in placement order
    for i in order:
        first, last = tensors[i].first_op, tensors[i].last_op
        candidate = 0
        for offset, j in placed:
            if tensors[j].first_op > last or first > tensors[j].last_op:
                continue
            if offset - candidate >= sizes[i]:
                break
            candidate = max(candidate, offset + sizes[j])
        offsets[i] = candidate
        position = next((k for k, (o, _) in enumerate(placed) if o > candidate), len(placed))
        placed.insert(max(position, 1) if placed and placed[0][0] <= candidate else 0,
                      (candidate, i))
    return offsets


def greedy_arena_bytes(tensors) -> int:
    """Bytes of head GreedyMemoryPlanner needs for ``tensors``: max of offset + aligned size."""
    return max((o + align(t.size_bytes)
                for o, t in zip(greedy_offsets(tensors), tensors)), default=0)


def planned_tensors(graph: MicroGraph) -> list:
    """Planner input: non-constant tensors in index order, then kernel scratch buffers. As in
    ``MarkAllocationLifetimes``, inputs are created at time 0, a tensor lives from producer to
    last consumer, outputs to the last op, scratch buffers only while their op runs."""
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
            result.append(PlannedTensor(size, time, time, f"op{time - 1}:{op.op}/scratch{k}"))
    return result


# --------------------------------------------------------------------------- kernel table
@dataclass(frozen=True)
class _Kernel:
    """Arena use of a reference kernel: builtin options struct (size, align) its flatbuffer
    parser allocates, OpData bytes from Init, persistent buffers from Prepare, scratch buffer
    requests (bytes), and the tensors Prepare copies to temp ``TfLiteTensor`` s (default: all).
    ``late``: Prepare allocates its persistent buffers after all its temp tensors, and
    ``AllocatePersistentBuffer`` checks the tail against ``head_``, not ``temp_``: the bytes
    the buffers are written with may overwrite temp tensor bytes, except those read later
    (``_LIVE_AFTER_LATE``)."""
    params: tuple = None
    op_data: int = 0
    persistent: object = lambda g, op: ()
    scratch: object = lambda g, op: ()
    temp: object = None
    late: bool = False


def _t(g, op, k, io="inputs"):
    return g.tensors[getattr(op, io)[k]]


def _per_channel(dim):  # int32 multiplier + shift per output channel of the filter
    return lambda g, op: (4 * _t(g, op, 1).shape[dim],) * 2


def _fc_arrays(g, op):  # only with per-channel quantized weights
    return (4 * _t(g, op, 1).quant_channels,) * 2 if _t(g, op, 1).quant_channels > 1 else ()


def _out_dims(g, op):  # output dims moved to the tail: TfLiteIntArray of the rank
    return (4 + 4 * len(_t(g, op, 0, "outputs").shape),)


def _mean_scratch(g, op):  # int32 accumulator (int8/16 only), input iterator, resolved axes
    inp, axis, out = _t(g, op, 0), _t(g, op, 1), _t(g, op, 0, "outputs")
    return ((4 * math.prod(out.shape),) if inp.itemsize <= 2 else ()) + (
        4 * len(inp.shape), 4 * math.prod(axis.shape))


def _lstm_scratch(g, op):  # four cell-state-sized buffers (int16 for int8): gates and cell update
    return (_t(g, op, 19).nbytes,) * 4


def _conv_temp(op):  # ConvPrepare: out, in, filter; CalculateOpDataConv: in, filter, bias, out
    (i, f, *b), o = op.inputs, op.outputs[0]
    return (o, i, f, i, f, b[0] if b else -1, o)


_POOL, _NO_PREPARE = _Kernel((40, 4), 32), (lambda op: ())
_KERNELS = {  # sizes read from the PyPI runtime's parsers / Init functions, x86-64
    "CONV_2D": _Kernel((28, 4), 80, _per_channel(0), temp=_conv_temp),
    "DEPTHWISE_CONV_2D": _Kernel((28, 4), 80, _per_channel(3), temp=_conv_temp),
    "FULLY_CONNECTED": _Kernel((32, 8), 72, _fc_arrays, late=True),
    "TRANSPOSE_CONV": _Kernel((20, 4), 88, _per_channel(0),
                              lambda g, op: (4 * math.prod(_t(g, op, 0, "outputs").shape),)),
    "MAX_POOL_2D": _POOL, "AVERAGE_POOL_2D": _POOL,
    "ADD": _Kernel((8, 4), 60), "SUB": _Kernel((8, 4), 52), "MUL": _Kernel((4, 4), 36),
    "CONCATENATION": _Kernel((8, 4), 80),
    "MEAN": _Kernel((1, 1), 44, scratch=_mean_scratch,  # helper: in, out, axis; then
                    temp=lambda op: (op.inputs[0], op.outputs[0], op.inputs[1],  # PrepareSimple
                                     op.inputs[0], op.inputs[1], op.outputs[0])),
    "RESHAPE": _Kernel((36, 4), 0, lambda g, op: _out_dims(g, op)  # only for a -1 dim
                       if -1 in _t(g, op, 0, "outputs").shape else ()),
    "SQUEEZE": _Kernel((36, 4)), "EXPAND_DIMS": _Kernel(), "TRANSPOSE": _Kernel(),
    "SHAPE": _Kernel((4, 4)), "PACK": _Kernel((8, 4), temp=_NO_PREPARE),
    "UNPACK": _Kernel((8, 4), temp=_NO_PREPARE),
    "STRIDED_SLICE": _Kernel((24, 4), 84), "SOFTMAX": _Kernel((4, 4), 80),
    "QUANTIZE": _Kernel(None, 32), "DEQUANTIZE": _Kernel(None, 32),
    "RELU": _Kernel(None, 28), "RELU6": _Kernel(None, 8), "LEAKY_RELU": _Kernel((4, 4), 24),
    "LOGISTIC": _Kernel(None, 16), "TANH": _Kernel(None, 16), "HARD_SWISH": _Kernel(None, 20),
    "PRELU": _Kernel(None, 28), "PAD": _Kernel(None, 56), "PADV2": _Kernel(None, 56),
    "MAXIMUM": _Kernel(temp=_NO_PREPARE), "MINIMUM": _Kernel(temp=_NO_PREPARE),
    "RESIZE_NEAREST_NEIGHBOR": _Kernel((2, 1)), "RESIZE_BILINEAR": _Kernel((2, 1)),
    # OpDataLSTM: size and cell-state info, 4 gates x 2 FullyConnectedParams, 3 ArithmeticParams
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _Kernel((16, 4), 688, scratch=_lstm_scratch),
    "SPACE_TO_DEPTH": _Kernel((4, 4), 0, _out_dims), "DEPTH_TO_SPACE": _Kernel((4, 4), 0, _out_dims),
}


def _kernel(op: MicroOp) -> _Kernel:
    return _KERNELS.get(op.op, _Kernel())


# --------------------------------------------------------------------------- overhead model
# Tail objects of the Python runtime before the model is read (RecordingSingleArenaBuffer-
# Allocator + GreedyMemoryPlanner + RecordingMicroAllocator = 448, MicroBuiltinDataAllocator
# 16) and SubgraphAllocations (24 per subgraph); fitted on print_allocations(), all 8-aligned.
RUNTIME_OBJECTS_BYTES = 464
SUBGRAPH_ALLOCATIONS_BYTES = 24
EVAL_TENSOR_BYTES = 24            # TfLiteEvalTensor, one per tensor of the subgraph
NODE_BYTES = 64                   # NodeAndRegistration, one per op
TFLITE_TENSOR_BYTES = 64          # TfLiteTensor (TF_LITE_STATIC_MEMORY)
AFFINE_QUANT_BYTES = 24           # TfLiteAffineQuantization (+ int array of zero points)
# Bytes of a temp TfLiteTensor, its TfLiteAffineQuantization and zero points (then of an output
# TfLiteTensor) that FULLY_CONNECTED's Prepare reads after writing its per-channel arrays:
# quantization.type/.params, params.zero_point; zero_point pointer; params.scale and type.
_LIVE_AFTER_LATE = (((0, 4), (8, 16), (20, 24)), ((8, 16),), (), ((16, 20), (48, 52)))
SCRATCH_REQUEST_BYTES = 16        # internal::ScratchBufferRequest; 12 spare per op at the head
MAX_SCRATCH_PER_OP = 12
SCRATCH_HANDLE_BYTES = 8          # ScratchBufferHandle, one per scratch buffer
ALLOCATION_INFO_BYTES = 32        # AllocationInfo, one per tensor and scratch buffer
PLANNER_BYTES_PER_BUFFER = 40     # GreedyMemoryPlanner::per_buffer_size()


def _tensor_struct(spec: MicroTensor) -> list:
    """(size, align) of a TfLiteTensor copy with its quantization (zero points copied)."""
    quant = [(AFFINE_QUANT_BYTES, 8), (4 + 4 * spec.quant_channels, 4)] if spec.quant_channels else []
    return [(TFLITE_TENSOR_BYTES, 8)] + quant


def _simulate(graph: MicroGraph, arena: int, head: int, buffers: int):
    """Replay an ``arena``-byte arena's allocations; return (failing phase or None, tail offset).

    The tail grows down from ``arena``. The head holds scratch requests while kernels prepare
    (temp tensors above them), then the planner's work arrays, then the ``head``-byte plan."""
    tail = arena

    def alloc(size, alignment):
        nonlocal tail
        tail = _align_down(tail - size, alignment)

    alloc(RUNTIME_OBJECTS_BYTES + SUBGRAPH_ALLOCATIONS_BYTES, 8)
    alloc(EVAL_TENSOR_BYTES * len(graph.tensors), 8)
    alloc(NODE_BYTES * len(graph.ops), 8)
    kernels = [_kernel(op) for op in graph.ops]
    for kernel in kernels:  # flatbuffer parsers: builtin options structs
        if kernel.params:
            alloc(*kernel.params)
    for kernel in kernels:  # Init: OpData
        if kernel.op_data:
            alloc(kernel.op_data, BUFFER_ALIGNMENT)
    requests = 0
    for op, kernel in zip(graph.ops, kernels):  # Prepare
        persistent = kernel.persistent(graph, op)
        for size in () if kernel.late else persistent:
            alloc(size, BUFFER_ALIGNMENT)
        scratch_requests = SCRATCH_REQUEST_BYTES * (requests + MAX_SCRATCH_PER_OP)
        temp, live = scratch_requests, []  # live: (start, end) of temp bytes read after late
        ids = kernel.temp(op) if kernel.temp else tuple(op.inputs) + tuple(op.outputs)
        for t in (t for t in ids if t >= 0):
            for k, (size, alignment) in enumerate(_tensor_struct(graph.tensors[t])):
                temp = align(temp, alignment)
                spans = _LIVE_AFTER_LATE[k] + (_LIVE_AFTER_LATE[3] if not k and t in op.outputs else ())
                live += [(temp + a, temp + b) for a, b in spans]
                temp += size
        if temp > tail:
            return "prepare", tail
        for size in persistent if kernel.late else ():
            alloc(size, BUFFER_ALIGNMENT)
            if tail < scratch_requests or any(a < tail + size and tail < b for a, b in live):
                return "prepare", tail
        requests += len(kernel.scratch(graph, op))
    if requests:
        alloc(SCRATCH_HANDLE_BYTES * requests, 8)
    for spec in graph.tensors:  # AllocateVariables
        if spec.variable:
            alloc(spec.nbytes, BUFFER_ALIGNMENT)
    temp = align(SCRATCH_REQUEST_BYTES * (requests + MAX_SCRATCH_PER_OP), 8) + 8
    temp += ALLOCATION_INFO_BYTES * (len(graph.tensors) + requests)
    if _align_down(tail, BUFFER_ALIGNMENT) - align(temp) < PLANNER_BYTES_PER_BUFFER * buffers:
        return "planning", tail
    for ids in (graph.inputs, graph.outputs):  # MicroInterpreter::AllocateTensors
        alloc(8 * len(ids), BUFFER_ALIGNMENT)
        for size, alignment in (s for t in ids for s in _tensor_struct(graph.tensors[t])):
            alloc(size, alignment)
    return ("io_tensors" if tail < head else None), tail


@dataclass(frozen=True)
class AllocatorReplay:
    """TFLM's allocator replayed on a graph at its smallest working arena: ``bytes`` =
    ``head_bytes`` (GreedyMemoryPlanner) + ``tail_bytes`` (persistent, with alignment padding).
    ``peak_op``: op index where the head reaches its top (most live bytes among those);
    ``binding``: the phase that sets the minimum (``io_tensors``: final layout; ``planning``/
    ``prepare``: transient temp use); ``per_op``: (op, live bytes, head top); ``unknown_ops``: op
    types modeled without OpData (may be low). `predict_arena` gives the `ArenaFigure` of it."""
    bytes: int
    head_bytes: int
    tail_bytes: int
    peak_op: int
    binding: str
    per_op: tuple = field(default=(), repr=False)
    unknown_ops: tuple = ()


def replay_allocations(graph: MicroGraph) -> AllocatorReplay:
    """TFLM's allocations replayed on ``graph`` at the smallest ``arena_size`` with which the TFLM
    Python runtime allocates it (bisected on the replay)."""
    planned = planned_tensors(graph)
    ends = [o + align(t.size_bytes) for o, t in zip(greedy_offsets(planned), planned)]
    head = max(ends, default=0)
    fails = lambda n: _simulate(graph, n, head, len(planned))[0] is not None  # noqa: E731
    low, high = head, head + 1024
    while fails(high):
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if not fails(middle) else (middle, high)
    per_op = []
    for time, op in enumerate(graph.ops, start=1):
        alive = [k for k, t in enumerate(planned) if t.first_op <= time <= t.last_op]
        per_op.append((op.op, sum(align(planned[k].size_bytes) for k in alive),
                       max((ends[k] for k in alive), default=0)))
    peak = max(range(len(per_op)), key=lambda i: (per_op[i][2], per_op[i][1]), default=-1)
    return AllocatorReplay(
        high, head, high - _simulate(graph, high, head, len(planned))[1], peak,
        _simulate(graph, high - 1, head, len(planned))[0], tuple(per_op),
        tuple(sorted({op.op for op in graph.ops if op.op not in _KERNELS})))


def alive_at(graph: MicroGraph, op: int) -> tuple:
    """Indices of the non-constant tensors of ``graph`` alive while op ``op`` runs (inputs from the
    start, outputs to the end)."""
    time = op + 1
    uses = {}
    for i, o in enumerate(graph.ops, start=1):
        for t in tuple(o.inputs) + tuple(o.outputs):
            uses.setdefault(t, []).append(i)
    alive = []
    for t, spec in enumerate(graph.tensors):
        if spec.constant:
            continue
        first = 0 if t in graph.inputs else min(uses.get(t, [-1]))
        last = len(graph.ops) if t in graph.outputs else max(uses.get(t, [-1]))
        if first <= time <= last:
            alive.append(t)
    return tuple(alive)


def predict_arena(graph: MicroGraph) -> ArenaFigure:
    """Predicted minimal ``arena_size`` of ``graph`` on the TFLM Python runtime: a ``"predicted"``
    `ArenaFigure` whose peak is the operator type at the head's top."""
    replay = replay_allocations(graph)
    peak = graph.ops[replay.peak_op].op if replay.peak_op >= 0 else ""
    return ArenaFigure(replay.bytes, "predicted", replay.head_bytes, replay.tail_bytes, replay.peak_op, peak,
                       alive_at(graph, replay.peak_op) if replay.peak_op >= 0 else (),
                       not replay.unknown_ops, replay.unknown_ops)


def predict_arena_from_tflite(tflite_bytes: bytes) -> ArenaFigure:
    """Predicted minimal TFLM ``arena_size`` of an int8 ``.tflite`` model, without running TFLM.

    Args:
        tflite_bytes: a ``.tflite`` flatbuffer, e.g. from `convert`.

    Returns:
        A ``"predicted"`` `ArenaFigure` (see `predict_arena`); ``align(figure.bytes)`` equals what
        `find_min_arena` measures on the PyPI runtime.

    Raises:
        ModelFileError: the bytes are not a TFLite flatbuffer.
        ModelError: the model has several subgraphs.

    Example:

    ```python
    figure = tflm_export.predict_arena_from_tflite(tflm_export.convert(model, x_train[:100]))
    print(f"{figure.bytes:,} B, head {figure.head_bytes:,} B, peak at op {figure.peak_op} ({figure.peak})")
    ```
    """
    return predict_arena(graph_from_tflite(tflite_bytes))
