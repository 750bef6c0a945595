"""Wall time of each export stage and the runtime probes of the arena search (target <= 12).

The search tries a generous arena (64 MiB), reads the bytes the runtime recorded as used, then
tries the larger of that figure and keras_cprune's planner prediction, and 16 bytes less: 3 probes
unless both are off (then it gallops to a bracket and bisects).
Each probe is a fork of one worker process that imports no TensorFlow.
    python benchmarks/bench_export.py
"""
import os
import re
import sys
import tempfile
import time

import keras
import numpy as np

from _common import machine
from keras_cprune.errors import TFLMRuntimeError
from keras_cprune.zoo import vgg
from tflm_export import compile_check, convert, verify, write_sources

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from models import randomize  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def stages(model):
    data = np.random.default_rng(0).uniform(0, 1, (32,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    tflite, t_convert = timed(lambda: convert(model, data))
    report, t_verify = timed(lambda: verify(tflite, test_inputs=data[:8], keras_model=model, latency_runs=20))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "fw")
        _, t_sources = timed(lambda: write_sources(tflite, out, report))
        compiled, t_compile = timed(lambda: compile_check(out))
    return (t_convert, t_verify, t_sources, t_compile), report, compiled


def mlp(depth: int):
    inputs = x = keras.Input((8,))
    for _ in range(depth):
        x = keras.layers.Dense(8, activation="relu")(x)
    model = keras.Model(inputs, x)
    randomize(model, seed=2)
    return model


def main() -> None:
    print(f"machine: {machine()}")
    mobilenet = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
    untrained = keras.models.clone_model(mobilenet)
    randomize(mobilenet, seed=1)  # stands in for trained weights: see the untrained line below
    models = {"MobileNetV2 a0.35 96x96": mobilenet, "VGG-style 28x28x1": vgg(keras, input_shape=(28, 28, 1)),
              "MLP 21 x Dense(8)": mlp(21)}  # init's temporary allocations exceed the recorded total
    print(f"{'model':<25}{'convert s':>10}{'verify s':>9}{'sources s':>10}{'compile s':>10}{'arena B':>10}"
          f"{'probes':>7}{'flash B':>10}{'latency ms':>11}{'TFLM=tf.lite':>13}")
    worst = 0
    for name, model in models.items():
        times, report, compiled = stages(model)
        worst = max(worst, len(report.arena.probes))
        flash = f"{compiled.flash_bytes:,}" if compiled.compiled else "no cc"
        exact = "bit-exact" if report.tflite_max_abs_diff == 0 else f"max {report.tflite_max_abs_diff} step"
        print(f"{name:<25}" + "".join(f"{t:>{w}.2f}" for t, w in zip(times, (10, 9, 10, 10)))
              + f"{report.arena.bytes:>10,}{len(report.arena.probes):>7}{flash:>10}{report.latency_ms:>11.2f}{exact:>13}")
    data = np.random.default_rng(0).uniform(0, 1, (32, 96, 96, 3)).astype("float32")
    try:
        verify(convert(untrained, data), latency_runs=1)
        print("untrained MobileNetV2 (weights=None, softmax): runs on TFLM")
    except TFLMRuntimeError as error:  # TFLM aborts on its all-zero logits' softmax; the caller lives on
        how = re.search(r"killed by signal \d+ \(\w+\)|an error", str(error)).group(0)
        print(f"untrained MobileNetV2 (weights=None, softmax): TFLMRuntimeError, the runtime was {how}")
    print(f"most probes: {worst} (target <= 12): {'PASS' if worst <= 12 else 'FAIL'}")


if __name__ == "__main__":
    main()
