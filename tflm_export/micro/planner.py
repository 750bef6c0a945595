"""Predict the minimal TFLite Micro tensor arena of an int8 model without running TFLM.

The arena (``micro_allocator.cc``) has a *head* of non-persistent buffers laid out by
``GreedyMemoryPlanner`` (activations and kernel scratch buffers, overlapping in time) and a
*tail* of persistent allocations growing down from the arena end (interpreter objects,
``TfLiteEvalTensor`` array, nodes, builtin options, kernel ``OpData``, per-channel arrays,
the input/output ``TfLiteTensor`` structs). ``predict_arena`` replays that allocation
sequence with its alignments and returns the smallest arena size for which every step fits.

A `targets.Target` names the build replayed: by default the PyPI ``tflite-micro`` runtime
(x86-64, reference kernels, ``RecordingMicroAllocator``), else a Cortex-M core's 32-bit build
with reference or CMSIS-NN kernels (their sizes and scratch rules: `kernels`). The arena starts
16-byte aligned (``new[]`` on the host, ``alignas(16)`` in firmware). ``PlannedTensor``/
``greedy_offsets`` and ``MicroGraph`` are framework-free, so a Keras graph can feed them too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tflm_export.arena import ArenaFigure
from tflm_export.micro.flatbuffer import graph_from_tflite
from tflm_export.micro.kernels import Kernel
from tflm_export.micro.op_graph import MicroGraph, MicroOp, MicroTensor
from tflm_export.micro.targets import HOST, Layout, Target, resolve_target

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


def planned_tensors(graph: MicroGraph, target: Target = HOST) -> list:
    """Planner input: non-constant tensors in index order, then the ``target`` kernels' scratch buffers. As in
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
    table = target.kernel_table
    for time, op in enumerate(graph.ops, start=1):
        for k, size in enumerate(_scratch(table.get(op.op, _UNKNOWN), graph, op)):
            result.append(PlannedTensor(size, time, time, f"op{time - 1}:{op.op}/scratch{k}"))
    return result


# --------------------------------------------------------------------------- overhead model
MAX_SCRATCH_PER_OP = 12           # kMaxScratchBuffersPerOp: spare scratch requests at the head per op
PLANNER_BYTES_PER_BUFFER = 40     # GreedyMemoryPlanner::per_buffer_size() (ints only: any build)


def _tensor_struct(spec: MicroTensor, layout: Layout) -> list:
    """(size, align) of a TfLiteTensor copy with its quantization (zero points copied)."""
    word = layout.word
    quant = [(layout.affine_quant, word), (4 + 4 * spec.quant_channels, 4)] if spec.quant_channels else []
    return [(layout.tflite_tensor, word)] + quant


def _simulate(graph: MicroGraph, arena: int, head: int, buffers: int, target: Target):
    """Replay an ``arena``-byte arena's allocations; return (failing phase or None, tail offset).

    The tail grows down from ``arena``. The head holds scratch requests while kernels prepare
    (temp tensors above them), then the planner's work arrays, then the ``head``-byte plan."""
    layout, table, word = target.layout, target.kernel_table, target.layout.word
    tail = arena

    def alloc(size, alignment):
        nonlocal tail
        tail = _align_down(tail - size, alignment)

    alloc(layout.runtime_objects, word)
    alloc(layout.eval_tensor * len(graph.tensors), word)
    alloc(layout.node * len(graph.ops), word)
    kernels = [table.get(op.op, _UNKNOWN) for op in graph.ops]
    for kernel in kernels:  # flatbuffer parsers: builtin options structs
        if kernel.params:
            alloc(*kernel.params)
    for kernel in kernels:  # Init: OpData
        if kernel.op_data:
            alloc(kernel.op_data, BUFFER_ALIGNMENT)
    requests, late_spans = 0, layout.live_after_late
    for op, kernel in zip(graph.ops, kernels):  # Prepare
        persistent = kernel.persistent(graph, op)
        for size in () if kernel.late else persistent:
            alloc(size, BUFFER_ALIGNMENT)
        scratch_requests = layout.scratch_request * (requests + MAX_SCRATCH_PER_OP)
        temp, live = scratch_requests, []  # live: (start, end) of temp bytes read after late
        ids = kernel.temp(op) if kernel.temp else tuple(op.inputs) + tuple(op.outputs)
        for t in (t for t in ids if t >= 0):
            for k, (size, alignment) in enumerate(_tensor_struct(graph.tensors[t], layout)):
                temp = align(temp, alignment)
                spans = late_spans[k] + (late_spans[3] if not k and t in op.outputs else ())
                live += [(temp + a, temp + b) for a, b in spans]
                temp += size
        if temp > tail:
            return "prepare", tail
        for size in persistent if kernel.late else ():
            alloc(size, BUFFER_ALIGNMENT)
            if tail < scratch_requests or any(a < tail + size and tail < b for a, b in live):
                return "prepare", tail
        requests += len(_scratch(kernel, graph, op))
    if requests:
        alloc(layout.scratch_handle * requests, word)
    for spec in graph.tensors:  # AllocateVariables
        if spec.variable:
            alloc(spec.nbytes, BUFFER_ALIGNMENT)
    temp = align(layout.scratch_request * (requests + MAX_SCRATCH_PER_OP), word) + word  # + subgraph offsets
    temp += layout.allocation_info * (len(graph.tensors) + requests)
    if _align_down(tail, BUFFER_ALIGNMENT) - align(temp) < PLANNER_BYTES_PER_BUFFER * buffers:
        return "planning", tail
    for ids in (graph.inputs, graph.outputs):  # MicroInterpreter::AllocateTensors
        alloc(word * len(ids), BUFFER_ALIGNMENT)
        for size, alignment in (s for t in ids for s in _tensor_struct(graph.tensors[t], layout)):
            alloc(size, alignment)
    return ("io_tensors" if tail < head else None), tail


_UNKNOWN = Kernel()


def _scratch(kernel: Kernel, graph: MicroGraph, op: MicroOp) -> tuple:
    """Scratch buffer requests of ``op``; none where the rule needs a `Window` the op lacks."""
    return () if kernel.needs_window and op.window is None else kernel.scratch(graph, op)


@dataclass(frozen=True)
class AllocatorReplay:
    """TFLM's allocator replayed on a graph at its smallest working arena: ``bytes`` =
    ``head_bytes`` (GreedyMemoryPlanner) + ``tail_bytes`` (persistent, with alignment padding).
    ``peak_op``: op index where the head reaches its top (most live bytes among those);
    ``binding``: the phase that sets the minimum (``io_tensors``: final layout; ``planning``/
    ``prepare``: transient temp use); ``per_op``: (op, live bytes, head top); ``unknown_ops``: op
    types modeled without OpData (may be low), and ops whose scratch rule lacks their window.
    `predict_arena` gives the `ArenaFigure` of it."""
    bytes: int
    head_bytes: int
    tail_bytes: int
    peak_op: int
    binding: str
    per_op: tuple = field(default=(), repr=False)
    unknown_ops: tuple = ()


def replay_allocations(graph: MicroGraph, target=None) -> AllocatorReplay:
    """TFLM's allocations replayed on ``graph`` at the smallest ``arena_size`` with which the
    ``target`` build (a `Target` or its name; None: the PyPI runtime) allocates it (bisected on
    the replay)."""
    target = resolve_target(target)
    planned = planned_tensors(graph, target)
    ends = [o + align(t.size_bytes) for o, t in zip(greedy_offsets(planned), planned)]
    head = max(ends, default=0)
    fails = lambda n: _simulate(graph, n, head, len(planned), target)[0] is not None  # noqa: E731
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
    table = target.kernel_table
    unknown = {op.op for op in graph.ops if op.op not in table}
    unknown |= {f"{op.op} without its window" for op in graph.ops
                if op.op in table and table[op.op].needs_window and op.window is None}
    return AllocatorReplay(
        high, head, high - _simulate(graph, high, head, len(planned), target)[1], peak,
        _simulate(graph, high - 1, head, len(planned), target)[0], tuple(per_op), tuple(sorted(unknown)))


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


def predict_arena(graph: MicroGraph, target=None) -> ArenaFigure:
    """Predicted minimal ``arena_size`` of ``graph`` on the ``target`` build (a `Target` or its
    name; None: the PyPI runtime): a ``"predicted"`` `ArenaFigure` whose peak is the operator
    type at the head's top."""
    replay = replay_allocations(graph, target)
    peak = graph.ops[replay.peak_op].op if replay.peak_op >= 0 else ""
    return ArenaFigure(replay.bytes, "predicted", replay.head_bytes, replay.tail_bytes, replay.peak_op, peak,
                       alive_at(graph, replay.peak_op) if replay.peak_op >= 0 else (),
                       not replay.unknown_ops, replay.unknown_ops)


def predict_arena_from_tflite(tflite_bytes: bytes, target=None) -> ArenaFigure:
    """Predicted minimal TFLM ``arena_size`` of an int8 ``.tflite`` model, without running TFLM.

    Args:
        tflite_bytes: a ``.tflite`` flatbuffer, e.g. from `convert`.
        target: the TFLM build: a `Target`, its name (``"cortex-m4/cmsis_nn"``, see `TARGETS`)
            or None for the PyPI runtime.

    Returns:
        A ``"predicted"`` `ArenaFigure` (see `predict_arena`); ``align(figure.bytes)`` equals what
        `find_min_arena` measures on the PyPI runtime, or the smallest arena of the target's
        build (docs/CORTEXM.md).

    Raises:
        ModelFileError: the bytes are not a TFLite flatbuffer.
        ModelError: the model has several subgraphs.
        BudgetError: an unknown target.

    Example:

    ```python
    figure = tflm_export.predict_arena_from_tflite(tflm_export.convert(model, x_train[:100]))
    print(f"{figure.bytes:,} B, head {figure.head_bytes:,} B, peak at op {figure.peak_op} ({figure.peak})")
    ```
    """
    return predict_arena(graph_from_tflite(tflite_bytes), target)
