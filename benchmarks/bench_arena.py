"""Arena and flash prediction vs the real TFLM runtime and flatbuffer, pruned and unpruned.

"predicted" replays the TFLite converter's op order (the unpruned model converted once,
`converter_order.converter_schedule`) on the Keras graph; "Keras order" is the lowering in Keras graph
order, the fallback. "measured" is the minimal arena_size the PyPI tflite-micro runtime accepts
(16-byte steps) for the int8 model tflm_export produces; flash is the flatbuffer's size.
    python benchmarks/bench_arena.py [--random 50]
"""
import argparse
import os
import sys

import keras
import numpy as np

from _common import machine
from keras_cprune import zoo
from keras_cprune.deploy.arena import estimate_deployment
from keras_cprune.graph.clone import as_trained
from keras_cprune.pruning.context import PruneContext
from keras_cprune.pruning.rebuild import rebuild
from tflm_export import convert
from tflm_export.micro.planner import align
from tflm_export.runtime.runner import find_min_arena

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from models import (concat_branches, inverted_residual, random_branched_model, random_model,  # noqa: E402
                    randomize, residual)


def suite(random_graphs: int):
    """(name, model, mode, ratio): each model is measured unpruned and, with a mode, pruned."""
    mnv2 = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35, classes=10,
                                          classifier_activation=None)
    v3 = keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3), classes=10,
                                             classifier_activation=None, include_preprocessing=False)
    for name, build in zoo.MLPERF_TINY.items():
        yield f"MLPerf Tiny {name}", build(), "MA", 0.5
    yield "vgg 28x28", zoo.vgg(), "MA", 0.5
    yield "resnet 28x28", zoo.resnet(), "PA", 0.5
    yield "mobilenetv2-style 28x28", zoo.mobilenetv2(), "FA", 0.5
    yield "MobileNetV2 a0.35 96x96", mnv2, "MA", 0.5
    yield "MobileNetV3Small 64x64", v3, None, 0
    yield "residual blocks 16x16", residual(keras), "PA", 0.5
    yield "inverted residual + SE 16x16", inverted_residual(keras), "MA", 0.5
    yield "concat branches 16x16", concat_branches(keras), "FA", 0.5
    for seed in range(4):
        yield f"random graph {seed}", random_model(keras, seed), "PA", 0.4
    rng = np.random.default_rng(2026)
    for seed in range(random_graphs):
        yield (f"shuffled branched {seed}", random_branched_model(keras, seed), str(rng.choice(["PA", "FA", "MA"])),
               float(rng.uniform(0.1, 0.8)))


def measure(model, context, removed):
    shapes = context.deps.pruned_shapes(removed)
    arena, flash = estimate_deployment(context.graph, shapes, assume_trained=True, schedule=context.schedule)
    keras_order = estimate_deployment(context.graph, shapes, assume_trained=True)[0].bytes
    data = np.random.default_rng(0).uniform(0, 1, (16,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    tflite = convert(as_trained(rebuild(model, context.deps, removed)), data)
    search = find_min_arena(tflite, arena.bytes)
    return arena, keras_order, flash, search, len(tflite)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=50, help="random shuffled branched graphs (default 50)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"{'model':<40}{'predicted B':>12}{'Keras order':>12}{'measured B':>12}{'flash pred.':>12}"
          f"{'flatbuffer':>12}{'probes':>7}")
    rows = []
    for name, model, mode, ratio in suite(args.random):
        randomize(model, seed=1)
        context = PruneContext.of(model)
        for label, removed in ((name, set()),) + (((f"  {mode} {ratio:.2f}", context.plan(mode, ratio)[1]),)
                                                    if mode else ()):
            arena, keras_order, flash, search, flatbuffer = measure(model, context, removed)
            exact = search.arena == align(arena.bytes)
            rows.append((name.startswith("shuffled"), exact, align(keras_order) == search.arena,
                         abs(flash - flatbuffer) / flatbuffer, (arena.bytes - search.arena) / search.arena))
            print(f"{label:<40}{arena.bytes:>12,}{keras_order:>12,}{search.arena:>12,}{flash:>12,}{flatbuffer:>12,}"
                  f"{search.probes:>7}{'' if exact else '  MISS'}{'' if arena.exact else '  approximate'}", flush=True)
    for title, picked in (("all", rows), ("shuffled branched graphs", [r for r in rows if r[0]])):
        if picked:
            print(f"{title}: {len(picked)} measurements, arena exact (to the 16-byte step) {sum(r[1] for r in picked)}"
                  f" (Keras order: {sum(r[2] for r in picked)}), worst arena error "
                  f"{100 * max(abs(r[4]) for r in picked):.2f}%, worst flash error {100 * max(r[3] for r in picked):.2f}%")
    exact = all(r[1] for r in rows) and max(r[3] for r in rows) <= 0.01
    print(f"target: every arena exact, flash within 1%: {'PASS' if exact else 'FAIL'}")


if __name__ == "__main__":
    main()
