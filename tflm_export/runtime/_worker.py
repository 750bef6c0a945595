"""The TFLite Micro runtime's process, started by `tflm_export.runtime.runner` as

    python -I _worker.py REQUEST.json

It imports numpy and ``tflite_micro`` only (about 0.2 s, no TensorFlow) and runs every interpreter
in a ``fork()``ed child: the runtime segfaults on some too-small arenas and aborts on some models,
and such a death then costs one child, reported as a failed attempt. Writes JSON lines to stdout
(``kind``: attempt, found, failed, run). REQUEST keys: ``model`` (path), ``n_inputs``, ``step``,
``first`` (a generous arena, bytes), ``predicted`` (bytes or null: where the search starts
unless the runtime records more), ``max_probes``, ``arena`` (fixed arena: no search), ``run``
(``{"inputs": [.npy paths], "out": .npz path, "latency_runs": n, "n_outputs": n, "bounds": split
points of the samples, one shard per interpreter, "sample_timeout_s": s}`` or null), ``timeout_s``
(per attempt; an interpreter running samples gets ``sample_timeout_s`` more per sample).
"""
import json
import math
import os
import re
import signal
import sys
import tempfile
import time

import numpy as np
from tflite_micro import runtime

_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


def _emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def _spawn(model: bytes, arena: int, job, timeout_s: int) -> tuple:
    """Fork a child that builds an interpreter with ``arena`` bytes and runs ``job`` on it;
    ``(pid, log)``, the log holding the child's stderr."""
    sys.stdout.flush()
    log = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.dup2(log.fileno(), 2)
            signal.alarm(timeout_s)
            job(runtime.Interpreter.from_bytes(model, arena_size=arena))
            code = 0
        except BaseException as exc:  # the runtime raises RuntimeError; report anything
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        finally:
            os._exit(code)
    return pid, log


def _reap(arena: int, pid: int, log) -> dict:
    """Wait for a `_spawn`ed child: ``{"arena", "ok", "how", "log"}``."""
    _, status = os.waitpid(pid, 0)
    with log:
        log.seek(0)
        text = log.read().decode(errors="replace").replace("\r", "")
    how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
           else "ok" if os.WEXITSTATUS(status) == 0 else "error")
    return {"arena": arena, "ok": how == "ok", "how": how, "log": text[-4000:]}


def _attempt(model: bytes, arena: int, job, timeout_s: int) -> dict:
    """Build an interpreter with ``arena`` bytes in a forked child and run ``job`` on it."""
    return _reap(arena, *_spawn(model, arena, job, timeout_s))


def _zeros_job(n_inputs: int):
    def job(interpreter) -> None:
        for k in range(n_inputs):
            details = interpreter.get_input_details(k)
            interpreter.set_input(np.zeros(details["shape"], details["dtype"]), k)
        interpreter.invoke()
        interpreter.print_allocations()
    return job


def _run_job(inputs: list, out: str, latency_runs: int, n_outputs: int):
    """Invoke once per sample (row of each input array), then time ``latency_runs`` invokes."""
    def job(interpreter) -> None:
        outputs = [[] for _ in range(n_outputs)]
        for i in range(len(inputs[0])):
            for k, array in enumerate(inputs):
                interpreter.set_input(array[i:i + 1], k)
            interpreter.invoke()
            for k in range(n_outputs):
                outputs[k].append(np.array(interpreter.get_output(k))[0])
        latencies = []
        for _ in range(latency_runs):
            start = time.perf_counter()
            interpreter.invoke()
            latencies.append(time.perf_counter() - start)
        np.savez(out, latencies=np.array(latencies), **{f"output_{k}": np.array(o) for k, o in enumerate(outputs)})
        interpreter.print_allocations()
    return job


def _search(fits, first: int, start: int, step: int) -> int:
    """Smallest multiple of ``step`` that fits, knowing ``first`` fits and 0 does not.

    ``start`` (rounded up to ``step``) is tried first with the size 16 B (or a step) below: the
    answer in 2 attempts when it is exact. Otherwise gallop away from it to a bracket and bisect
    that: downwards by 16 B, x4 each time; upwards (init's temporary allocations, e.g. the memory
    planner's 36 B per buffer, can peak above a start taken from the recorded total) by 256 B,
    x8 each time.
    """
    lo, hi = 0, first  # lo does not fit, hi fits
    guess = -(-start // step) * step
    if guess < hi and fits(guess):
        hi, delta = guess, max(step, 16)
        while hi - delta > lo:
            below = (hi - delta) // step * step
            if not fits(below):
                lo = below
                break
            hi, delta = below, delta * 4
    elif guess < hi:
        lo, delta = guess, 256
        while lo + delta < hi:
            above = -(-(lo + delta) // step) * step
            if fits(above):
                hi = above
                break
            lo, delta = above, delta * 8
    while hi - lo > step:
        middle = (lo + hi) // 2 // step * step
        lo, hi = (lo, middle) if fits(middle) else (middle, hi)
    return hi


class _Limit(Exception):
    pass


def main(request: dict) -> int:
    with open(request["model"], "rb") as f:
        model = f.read()
    timeout_s, arena = request["timeout_s"], request["arena"]
    if arena is None:
        attempts = []

        def fits(size: int) -> bool:
            if len(attempts) == request["max_probes"]:
                raise _Limit
            attempts.append(_attempt(model, size, _zeros_job(request["n_inputs"]), timeout_s))
            _emit(kind="attempt", **attempts[-1])
            return attempts[-1]["ok"]

        if not fits(request["first"]):
            _emit(kind="failed", reason="generous")
            return 0
        total = int(_TOTAL.search(attempts[0]["log"]).group(1))
        try:
            arena = _search(fits, request["first"], max(total, request["predicted"] or 0), request["step"])
        except _Limit:
            _emit(kind="failed", reason="limit")
            return 0
        _emit(kind="found", arena=arena)
    if request["run"] is not None:
        _emit(kind="run", **_run(model, arena, request["run"], timeout_s))
    return 0


def _run(model: bytes, arena: int, run: dict, timeout_s: int) -> dict:
    """Outputs for every sample, by one forked interpreter per shard (``run["bounds"]``, split
    points: one shard per core), then ``latency_runs`` invokes timed in an interpreter of their
    own, with no shard competing for the CPU. Writes ``run["out"]``; the first failed attempt, or
    the timing one."""
    inputs = [np.load(path) for path in run["inputs"]]
    n_outputs, bounds = run["n_outputs"], run["bounds"]
    paths = [f"{run['out']}.{i}.npz" for i in range(len(bounds) - 1)]
    per_sample = run.get("sample_timeout_s", 0)
    children = [_spawn(model, arena, _run_job([a[lo:hi] for a in inputs], path, 0, n_outputs),
                       timeout_s + math.ceil((hi - lo) * per_sample)) for lo, hi, path in zip(bounds, bounds[1:], paths)]
    results = [_reap(arena, *child) for child in children]
    failed = [r for r in results if not r["ok"]]
    if failed:
        return failed[0]
    timing = _attempt(model, arena, _run_job([a[:1] for a in inputs], run["out"], run["latency_runs"], 0),
                      timeout_s + math.ceil(run["latency_runs"] * per_sample))
    if timing["ok"]:
        with np.load(run["out"]) as data:
            merged = {"latencies": data["latencies"]}
        for k in range(n_outputs):
            merged[f"output_{k}"] = np.concatenate([np.load(path)[f"output_{k}"] for path in paths])
        np.savez(run["out"], **merged)
    return timing


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        sys.exit(main(json.load(f)))
