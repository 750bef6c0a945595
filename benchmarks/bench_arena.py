"""Arena predictor vs the real TFLM runtime on a suite of models (pruned and unpruned).

estimate_arena(model) works on the Keras graph alone; "measured" is the minimal arena_size the
PyPI tflite-micro runtime accepts (16-byte bisection) for the int8 model tflm_export produces.
    python benchmarks/bench_arena.py
"""
import os
import sys

import keras
import numpy as np

from _common import machine
from keras_cprune import estimate_arena, prune
from keras_cprune.zoo import mobilenetv2, resnet, vgg
from tflm_export import convert
from tflm_export.runtime import find_min_arena

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from models import concat_branches, inverted_residual, random_model, randomize, residual  # noqa: E402


def suite():
    mnv2 = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35, classes=10,
                                          classifier_activation=None)
    v3 = keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3), classes=10,
                                             classifier_activation=None, include_preprocessing=False)
    yield "vgg 28x28", vgg()
    yield "vgg 28x28 MA 0.5", prune(vgg(), "MA", 0.5)
    yield "vgg-wide 28x28", vgg(widths=(64, 128, 256))
    yield "vgg 32x32x3", vgg(input_shape=(32, 32, 3))
    yield "resnet 28x28", resnet()
    yield "resnet 28x28 PA 0.5", prune(resnet(), "PA", 0.5)
    yield "mobilenetv2-style 28x28", mobilenetv2()
    yield "mobilenetv2-style FA 0.5", prune(mobilenetv2(), "FA", 0.5)
    yield "MobileNetV2 a0.35 96x96", mnv2
    yield "MobileNetV2 a0.35 96x96 MA 0.5", prune(mnv2, "MA", 0.5)
    yield "MobileNetV3Small 64x64", v3
    yield "residual blocks 16x16", residual(keras)
    yield "inverted residual + SE 16x16", inverted_residual(keras)
    yield "concat branches 16x16", concat_branches(keras)
    for seed in range(4):
        yield f"random graph {seed}", random_model(keras, seed)


def main() -> None:
    print(f"machine: {machine()}")
    print(f"{'model':<34}{'predicted B':>12}{'measured B':>12}{'error':>9}{'probes':>8}")
    worst, count = 0.0, 0
    for name, model in suite():
        randomize(model, seed=1)
        data = np.random.default_rng(0).uniform(0, 1, (16,) + tuple(model.inputs[0].shape[1:])).astype("float32")
        predicted = estimate_arena(model).bytes
        search = find_min_arena(convert(model, data), predicted)
        error = (predicted - search.arena) / search.arena
        worst, count = max(worst, abs(error)), count + 1
        print(f"{name:<34}{predicted:>12,}{search.arena:>12,}{100 * error:>8.2f}%{search.probes:>8}")
    print(f"{count} models, worst |error| {100 * worst:.2f}% (target <= 2%; the measurement is in 16-byte steps, "
          f"the prediction byte-exact): {'PASS' if worst <= 0.02 else 'FAIL'}")


if __name__ == "__main__":
    main()
