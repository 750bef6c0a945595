"""Wall time of each export stage and the arena search's subprocess probes (target <= 12).

The search brackets [prediction - 1 KB, prediction + 64 B] around the tflm_planner prediction;
one subprocess bisects it, so a correct prediction costs one probe.
    python benchmarks/bench_export.py
"""
import os
import tempfile
import time

import keras
import numpy as np

from _common import machine
from keras_cprune.tflm_planner import predict_arena_from_tflite
from keras_cprune.zoo import vgg
from tflm_export import compile_check, convert, verify
from tflm_export.sources import write_sources


def stages(model):
    data = np.random.default_rng(0).uniform(0, 1, (32,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    times = {}
    start = time.perf_counter()
    tflite = convert(model, data)
    times["convert"] = time.perf_counter() - start
    start = time.perf_counter()
    report = verify(tflite, latency_runs=10)
    times["verify"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "fw")
        start = time.perf_counter()
        write_sources(tflite, out, report)
        times["sources"] = time.perf_counter() - start
        start = time.perf_counter()
        compiled = compile_check(out)
        times["compile"] = time.perf_counter() - start
    return times, report, compiled, predict_arena_from_tflite(tflite).total_bytes


def main() -> None:
    print(f"machine: {machine()}")
    models = {"MobileNetV2 a0.35 96x96": keras.applications.MobileNetV2(
        weights=None, input_shape=(96, 96, 3), alpha=0.35, classes=10, classifier_activation=None),
        "VGG-style 28x28": vgg()}
    print(f"{'model':<26}{'convert s':>10}{'verify s':>10}{'sources s':>10}{'compile s':>10}"
          f"{'arena B':>10}{'probes':>8}{'flash B':>10}{'latency ms':>11}")
    worst = 0
    for name, model in models.items():
        t, report, compiled, predicted = stages(model)
        worst = max(worst, report.arena_probes)
        print(f"{name:<26}{t['convert']:>10.2f}{t['verify']:>10.2f}{t['sources']:>10.2f}{t['compile']:>10.2f}"
              f"{report.arena_bytes:>10,}{report.arena_probes:>8}{compiled.get('flash_bytes', 0):>10,}"
              f"{report.latency_ms:>11.2f}")
    print(f"most probes: {worst} (target <= 12): {'PASS' if worst <= 12 else 'FAIL'}")


if __name__ == "__main__":
    main()
