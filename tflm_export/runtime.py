"""The TFLite Micro runtime (PyPI ``tflite-micro``) in subprocesses: it aborts the whole process
on some models, so nothing here runs it in the caller's interpreter."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from keras_cprune.errors import TFLMRuntimeError

MAX_PROBES = 12
_NOISE = re.compile(r"^(WARNING: All log messages|[IWE]\d{4} |To enable the following instructions)")
_TIMEOUT_S = 600


@dataclass(frozen=True)
class ArenaSearch:
    """Minimal arena (bytes, a multiple of the search step) and the subprocesses it took."""

    arena: int
    probes: int
    tried: tuple  # (size, fits) in the order tried


def _child(args: list, timeout: int = _TIMEOUT_S) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "tflm_export._worker", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))


def _crash(result: subprocess.CompletedProcess, what: str) -> TFLMRuntimeError:
    how = f"killed by signal {-result.returncode}" if result.returncode < 0 else f"exit code {result.returncode}"
    lines = [line for line in (result.stderr or "").splitlines() if line.strip() and not _NOISE.match(line)]
    tail = "\n".join(lines[-15:]) or "(nothing: the runtime aborted without a message)"
    return TFLMRuntimeError(f"The TFLite Micro runtime failed while {what} ({how}). This happens e.g. when an "
                            f"untrained model's softmax cannot be quantized; train or recalibrate the model. "
                            f"Runtime output:\n{tail}")


def find_min_arena(tflite_bytes: bytes, guess: int, step: int = 16, max_probes: int = MAX_PROBES) -> ArenaSearch:
    """Bisect the smallest working ``arena_size`` to ``step`` bytes, starting from ``guess`` (e.g. the
    `tflm_planner` prediction): the bracket is [guess - 1 KB, guess + 64 B], widened as needed.
    One subprocess bisects the whole bracket. If it crashes (TFLM can segfault on a too-small
    arena), the next one first tries a generous arena (4x + 4 KB): a crash there too means the
    runtime aborts on this model whatever the arena, a `TFLMRuntimeError`. At most ``max_probes``
    processes (tiny models can segfault across a band of sizes below the minimum: each crash costs one)."""
    lo, hi = max(0, (guess - 1024) // step * step), -(-(guess + 64) // step) * step
    tried: list = []
    generous = None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as f:
            f.write(tflite_bytes)
        for probe in range(1, max_probes + 1):
            known = any(ok for _, ok in tried) and any(not ok for _, ok in tried)
            result = _child(["search", path, lo, hi, step, int(known)])
            last = None
            for line in result.stdout.splitlines():
                word, _, value = line.partition(" ")
                if word in ("OK", "FAIL"):
                    tried.append((int(value), word == "OK"))
                    lo, hi = (lo, int(value)) if word == "OK" else (int(value), hi)
                elif word == "TRY":
                    last = int(value)
                elif word == "MIN":
                    return ArenaSearch(int(value), probe, tuple(tried))
            working = [size for size, ok in tried if ok]
            if last is None or (generous is not None and last >= generous) or (working and last >= min(working)):
                raise _crash(result, "allocating and invoking the model" if last is None else
                             f"allocating and invoking the model with a {last}-byte arena")
            tried.append((last, False))  # crashed on a too-small arena
            lo = max(lo, last)
            if not working:  # nothing known to fit yet: check a generous arena first
                generous = hi = -(-max(hi, 4 * last + 4096) // step) * step
    raise TFLMRuntimeError(f"The arena search did not converge within {max_probes} runtime processes; "
                           f"last bracket ({lo}, {hi}] bytes.")


@dataclass(frozen=True)
class RunResult:
    outputs: np.ndarray
    latencies_s: np.ndarray
    allocations: str  # the runtime's print_allocations() breakdown (head, tail, per kind)


def run_model(tflite_bytes: bytes, arena: int, inputs: np.ndarray, latency_runs: int = 20) -> RunResult:
    """Invoke the model on each of ``inputs`` (already in the input dtype), then time
    ``latency_runs`` invokes, in a subprocess with ``arena`` bytes of tensor arena."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, n) for n in ("model.tflite", "inputs.npy", "out.npz")]
        with open(paths[0], "wb") as f:
            f.write(tflite_bytes)
        np.save(paths[1], inputs)
        result = _child(["run", paths[0], arena, paths[1], paths[2], latency_runs])
        if result.returncode != 0 or not os.path.exists(paths[2]):
            raise _crash(result, "running inference")
        data = np.load(paths[2])
        allocations = "\n".join(line.split("] ", 1)[-1] for line in result.stderr.splitlines()
                                if line.startswith("[RecordingMicroAllocator]"))
        return RunResult(data["outputs"], data["latencies"], allocations)
