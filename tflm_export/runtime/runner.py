"""The TFLite Micro runtime (PyPI ``tflite-micro``) in a child process, never in the caller's:
it segfaults on some too-small arenas and aborts (SIGABRT, no message) on some models.

One worker process (`_worker.py`, no TensorFlow import) serves a whole request; each interpreter
it builds lives in a forked child of it, so a crash becomes a failed attempt or a
`TFLMRuntimeError` carrying the runtime's output.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from tflm_export.arena import ArenaFigure
from tflm_export.errors import MeasurementError, ModelError, TFLMRuntimeError
from tflm_export.micro.planner import predict_arena_from_tflite

from tflm_export.micro.flatbuffer import graph_from_tflite, read_model

MAX_PROBES = 12  # arena sizes one search may try
MIN_SHARD = 256  # samples: below this, one more interpreter in parallel costs more than it saves
GENEROUS_ARENA = 64 * 1024 * 1024  # bytes: the first try; pages the runtime does not touch cost nothing
TIMEOUT_S = 300  # per interpreter (allocation + invokes), plus SAMPLE_TIMEOUT_S per sample it runs
SAMPLE_TIMEOUT_S = 0.5  # a ResNet-8 invoke takes ~30 ms on a host core: room for a loaded machine
_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")
_ALLOCATION = re.compile(r"'([^']+)' used (\d+) bytes with alignment overhead \(requested (\d+) bytes for (\d+)")
_SECTION = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_MISSING_KERNEL = re.compile(r"Didn't find op for builtin opcode '(\w+)'")


@dataclass(frozen=True)
class RunResult:
    """What `run_model` got from the runtime.

    Attributes:
        outputs: one array ``(N, *shape)`` per model output, in the output dtype.
        latencies_s: seconds per timed invoke.
        allocations: the runtime's arena breakdown in bytes (see `parse_allocations`).
    """

    outputs: tuple
    latencies_s: np.ndarray
    allocations: dict


def parse_allocations(text: str) -> dict:
    """``print_allocations()`` as ``{"total"|"head"|"tail": bytes, "persistent": {kind: {"bytes",
    "requested", "count"}}}``: head = planned activations and scratch buffers, tail = persistent data."""
    result = {name: int(value) for name, value in _SECTION.findall(text)}
    result["persistent"] = {kind: {"bytes": int(used), "requested": int(req), "count": int(n)}
                            for kind, used, req, n in _ALLOCATION.findall(text)}
    return result


def _how(attempt: dict) -> str:
    if attempt["how"].startswith("signal "):  # the only other outcome of a failed attempt is "error"
        number = int(attempt["how"].split()[1])
        if number == signal.SIGALRM:
            return (f"stopped at its time limit ({TIMEOUT_S} s per interpreter + {SAMPLE_TIMEOUT_S} s per sample; "
                    f"SIGALRM): a hung kernel, or a machine too loaded for that many samples")
        return f"killed by signal {number} ({signal.Signals(number).name})"
    return "it reported an error"


def _failure(tflite_bytes: bytes, attempt: dict, what: str) -> TFLMRuntimeError:
    lines = [line for line in attempt["log"].splitlines() if line.strip()]
    output = "\n".join(lines[-15:]) or "(nothing: the runtime aborted without a message)"
    tiny = read_model(tflite_bytes).tiny_scales
    hint = ""
    if tiny and attempt["how"] == f"signal {signal.SIGABRT.value}":
        named = "; ".join(f"{name!r} (scale {scale:.2g}, input of {', '.join(ops) or 'nothing'})"
                          for name, scale, ops in tiny[:3])
        hint = (f"\nLikely cause: {len(tiny)} tensor(s) have a near-zero quantization scale, i.e. calibration saw "
                f"a constant tensor (an untrained model, or constant representative data): {named}. TFLM's "
                "softmax kernel aborts on such an input. Train the model, or calibrate with data that exercises it.")
    return TFLMRuntimeError(f"The TFLite Micro runtime failed while {what}: {_how(attempt)}. "
                            f"Runtime output:\n{output}{hint}{_missing_kernels(tflite_bytes, attempt['log'])}")


def _missing_kernels(tflite_bytes: bytes, log: str) -> str:
    """The ops the runtime has no kernel for and the tensors they compute, whose names hold the
    Keras layers' (``model/up_1/Tile``); empty when the log names none."""
    missing = sorted(set(_MISSING_KERNEL.findall(log)))
    if not missing:
        return ""
    graph = graph_from_tflite(tflite_bytes)
    names = [repr(graph.tensors[op.outputs[0]].name) for op in graph.ops if op.op in missing and op.outputs]
    return (f"\nTFLite Micro has no kernel for {', '.join(missing)}, the op(s) computing {', '.join(names[:3])}"
            f"{' ...' if len(names) > 3 else ''}: replace the layer named there with layers that convert to ops "
            "TFLite Micro has (e.g. UpSampling2D(interpolation='bilinear'), not nearest, which converts to TILE).")


def _work(tflite_bytes: bytes, tmp: str, request: dict, timeout_s: int) -> list:
    """Run the worker on ``request``; its JSON lines."""
    path = os.path.join(tmp, "model.tflite")
    with open(path, "wb") as f:
        f.write(tflite_bytes)
    request_path = os.path.join(tmp, "request.json")
    with open(request_path, "w") as f:
        json.dump({"model": path, "timeout_s": timeout_s, **request}, f)
    worker = subprocess.Popen([sys.executable, "-I", _WORKER, request_path], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    samples = request["run"]["bounds"][-1] + request["run"]["latency_runs"] if request["run"] else 0
    try:
        out, err = worker.communicate(timeout=timeout_s * (request["max_probes"] + 2) + samples * SAMPLE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its forked interpreters
        worker.communicate()
        raise TFLMRuntimeError(f"The TFLite Micro worker did not finish within its time limit ({timeout_s} s per "
                               f"interpreter + {SAMPLE_TIMEOUT_S} s per sample).") from None
    if worker.returncode != 0:
        raise TFLMRuntimeError(f"The TFLite Micro worker failed (exit status {worker.returncode}):\n{err[-2000:]}")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def shard_bounds(n: int) -> list:
    """Split points ``[0, ..., n]`` of ``n`` samples into one contiguous shard per usable core,
    each of at least `MIN_SHARD` samples: how TFLM and the tf.lite reference spread a test set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return np.linspace(0, n, max(1, min(cores, n // MIN_SHARD)) + 1).astype(int).tolist()


def _request(tflite_bytes: bytes, tmp: str, inputs, latency_runs: int) -> dict | None:
    if inputs is None:
        return None
    arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    paths = []
    for k, array in enumerate(arrays):
        paths.append(os.path.join(tmp, f"input_{k}.npy"))
        np.save(paths[-1], np.ascontiguousarray(array))
    return {"inputs": paths, "out": os.path.join(tmp, "out.npz"), "latency_runs": latency_runs,
            "n_outputs": len(read_model(tflite_bytes).outputs), "bounds": shard_bounds(len(arrays[0])),
            "sample_timeout_s": SAMPLE_TIMEOUT_S}


def _predict(tflite_bytes: bytes) -> int | None:
    """`predict_arena_from_tflite`'s arena (bytes), where the search starts; None for a model it
    cannot read (several subgraphs): then the runtime's recorded total is the start."""
    try:
        return predict_arena_from_tflite(tflite_bytes).bytes
    except ModelError:
        return None


def _search_result(tflite_bytes: bytes, lines: list, first: int, max_probes: int) -> ArenaFigure | None:
    """The measured `ArenaFigure` of the worker's search; head and tail as the runtime recorded them
    with the generous first arena."""
    attempts = [line for line in lines if line["kind"] == "attempt"]
    for line in lines:
        if line["kind"] == "failed" and line["reason"] == "generous":
            raise _failure(tflite_bytes, attempts[0], f"allocating and invoking the model with a {first:,}-byte "
                           "arena (more RAM than any microcontroller has)")
        if line["kind"] == "failed":
            tried = sorted((a["arena"], a["ok"]) for a in attempts)
            raise TFLMRuntimeError(f"The arena search did not converge within max_probes={max_probes} attempts; "
                                   f"tried (bytes, fits): {tried}. Pass a larger max_probes.")
        if line["kind"] == "found":
            recorded = parse_allocations(attempts[0]["log"])
            return ArenaFigure(line["arena"], "measured", recorded.get("head", 0), recorded.get("tail", 0),
                               probes=tuple((a["arena"], a["ok"]) for a in attempts))
    return None


def _run_result(tflite_bytes: bytes, lines: list, run: dict) -> RunResult:
    attempt = next(line for line in lines if line["kind"] == "run")
    if not attempt["ok"]:
        raise _failure(tflite_bytes, attempt, f"running inference with a {attempt['arena']:,}-byte arena")
    with np.load(run["out"]) as data:
        outputs = tuple(data[f"output_{k}"] for k in range(run["n_outputs"]))
        return RunResult(outputs, data["latencies"], parse_allocations(attempt["log"]))


def _measure(tflite_bytes: bytes, *, arena=None, guess=None, step=16, max_probes=MAX_PROBES, inputs=None,
             latency_runs=0, timeout_s=TIMEOUT_S) -> tuple:
    """``(measured ArenaFigure or None, RunResult or None)``: search unless ``arena`` is given, run if ``inputs``."""
    if not isinstance(step, int) or step < 1:
        raise MeasurementError(f"Expected `step` to be a positive integer number of bytes (e.g. 16). "
                               f"Received: step={step!r}.")
    n_inputs = len(read_model(tflite_bytes).inputs)
    first = -(-max(GENEROUS_ARENA, 4 * (guess or 0)) // step) * step
    predicted = None if arena is not None else _predict(tflite_bytes)
    with tempfile.TemporaryDirectory(prefix="tflm-") as tmp:
        run = _request(tflite_bytes, tmp, inputs, latency_runs)
        lines = _work(tflite_bytes, tmp, {"n_inputs": n_inputs, "step": step, "first": first, "predicted": predicted,
                                          "max_probes": max_probes, "arena": arena, "run": run}, timeout_s)
        search = None if arena is not None else _search_result(tflite_bytes, lines, first, max_probes)
        return search, None if run is None else _run_result(tflite_bytes, lines, run)


def find_min_arena(tflite_bytes: bytes, guess: int | None = None, step: int = 16,
                   max_probes: int = MAX_PROBES) -> ArenaFigure:
    """Smallest ``arena_size`` (a multiple of ``step`` bytes) with which TFLM allocates and
    invokes the model, each try in its own process.

    After a generous arena (64 MiB, or 4 x ``guess`` if larger), S = the larger of the runtime's
    recorded usage there and `predict_arena_from_tflite` (which also counts init's temporary
    allocations), rounded up to ``step``: S and S - 16 B are tried, which settles it in 3 probes
    when the prediction is exact (usual); otherwise a gallop from S and a bisection.

    Args:
        tflite_bytes: a ``.tflite`` flatbuffer, e.g. from `convert`.
        guess: optional arena bytes expected; the first try is at least 4 x ``guess``.
        step: arena granularity in bytes, >= 1. Default 16 (TFLM's alignment).
        max_probes: most arena sizes tried. Default 12.

    Returns:
        A ``"measured"`` `ArenaFigure`: ``bytes`` is the minimal ``arena_size``, ``probes`` the sizes
        tried, head and tail as the runtime recorded them with the generous arena.

    Raises:
        MeasurementError: ``step`` is not a positive integer.
        ModelFileError: ``tflite_bytes`` is not a TFLite flatbuffer.
        TFLMRuntimeError: even the generous arena fails, or the search needs over ``max_probes``.

    Example:

    ```python
    search = tflm_export.find_min_arena(tflm_export.convert(model, x_train[:100]))
    print(search.bytes, search.probes)
    ```
    """
    return _measure(tflite_bytes, guess=guess, step=step, max_probes=max_probes)[0]


def run_model(tflite_bytes: bytes, arena: int, inputs, latency_runs: int = 20) -> RunResult:
    """Invoke the model on each row of ``inputs`` with ``arena`` bytes, then time invokes.

    Args:
        tflite_bytes: a ``.tflite`` flatbuffer.
        arena: the ``arena_size`` in bytes.
        inputs: an array ``(N, *input_shape)`` in the input dtype, or a list of one per model input.
        latency_runs: invokes timed after the outputs. Default 20.

    Returns:
        A `RunResult`.

    Raises:
        TFLMRuntimeError: the runtime fails, aborts or crashes.
    """
    return _measure(tflite_bytes, arena=arena, inputs=inputs, latency_runs=latency_runs)[1]


def measure(tflite_bytes: bytes, inputs, latency_runs: int = 20, step: int = 16,
            max_probes: int = MAX_PROBES) -> tuple:
    """`find_min_arena` then `run_model` at the arena found, by one worker process.

    Args:
        tflite_bytes: a ``.tflite`` flatbuffer.
        inputs: an array ``(N, *input_shape)`` in the input dtype, or a list of one per model input.
        latency_runs: invokes timed after the outputs. Default 20.
        step: arena granularity in bytes. Default 16.
        max_probes: most arena sizes tried. Default 12.

    Returns:
        ``(measured ArenaFigure, RunResult)``.

    Raises:
        TFLMRuntimeError: the runtime fails, or the search does not converge.
    """
    return _measure(tflite_bytes, step=step, max_probes=max_probes, inputs=inputs, latency_runs=latency_runs)
