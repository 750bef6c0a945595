"""Child process of `tflm_export.runtime`: the TFLM runtime can abort, so it only runs here.

    python -m tflm_export._worker search MODEL LO HI STEP KNOWN   bisection; prints TRY/OK/FAIL lines
    python -m tflm_export._worker run MODEL ARENA INPUTS.npy OUT.npz RUNS
"""
import sys
import time

import numpy as np
from tflite_micro import runtime


def _say(line: str) -> None:
    print(line, flush=True)


def _fits(model: bytes, arena: int) -> bool:
    _say(f"TRY {arena}")
    try:
        interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena)
        details = interpreter.get_input_details(0)
        interpreter.set_input(np.zeros(details["shape"], details["dtype"]), 0)
        interpreter.invoke()
    except RuntimeError:
        _say(f"FAIL {arena}")
        return False
    _say(f"OK {arena}")
    return True


def search(model: bytes, lo: int, hi: int, step: int, known: bool) -> None:
    """Smallest multiple of ``step`` in (lo, hi] that allocates and invokes. Unless ``known``
    (lo already failed and hi already fit), the bracket is first checked and widened."""
    while not known and not _fits(model, hi):
        lo, hi = hi, 2 * hi
    while not known and lo > 0 and _fits(model, lo):
        lo, hi = max(0, lo - 4 * (hi - lo) - 1024) // step * step, lo
    while hi - lo > step:
        middle = (lo + hi) // (2 * step) * step
        lo, hi = (lo, middle) if _fits(model, middle) else (middle, hi)
    _say(f"MIN {hi}")


def run(model: bytes, arena: int, inputs_path: str, out_path: str, runs: int) -> None:
    interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena)
    inputs = np.load(inputs_path)
    outputs = []
    for sample in inputs:
        interpreter.set_input(sample[None], 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0))[0])
    details = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(details["shape"], details["dtype"]), 0)
    latencies = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        latencies.append(time.perf_counter() - start)
    np.savez(out_path, outputs=np.array(outputs), latencies=np.array(latencies))
    interpreter.print_allocations()  # to stderr


if __name__ == "__main__":
    command, path = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        data = f.read()
    if command == "search":
        search(data, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1")
    else:
        run(data, int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]))
