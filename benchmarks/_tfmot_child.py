"""The tensorflow-model-optimization row of compare_methods.py, in its own tf_keras interpreter.

    TF_USE_LEGACY_KERAS=1 python benchmarks/_tfmot_child.py ARCH EPOCHS TRAIN_SIZE TEST_SIZE SEED OUT.json

Trains the tf_keras build of a zoo architecture with `prune_low_magnitude` (sparsity rising to
50% over the first half of training, then held), strips the wrappers and measures the int8 model
on TFLM with `evaluate`, which compare_methods.py also uses for its Keras 3 rows; then the same
model with its zeros refilled (a dense twin), to show what the zeros save on TFLM.
"""
from __future__ import annotations

import json
import math
import sys
import time

import numpy as np

import tflm_export
from keras_cprune import analyze, estimate_arena, zoo
from keras_cprune.datasets import load_fashion_mnist

SPARSITY = 0.5
BATCH = 64


def evaluate(model, data, seconds: float) -> dict:
    """Convert ``model`` to int8 (200 training images calibrate), run the whole test set on TFLM;
    float/int8 accuracy, params, MACs, flash (flatbuffer bytes), measured and predicted arena
    (bytes), median host latency (ms) and the given training ``seconds``."""
    (x, _), (xt, yt) = data
    tflite = tflm_export.convert(model, x[:200])
    tflm = tflm_export.verify(tflite, test_inputs=xt, labels=yt, keras_model=model)
    report = analyze(model)
    return {"float_acc": tflm.float_accuracy, "int8_acc": tflm.int8_accuracy, "params": report.params,
            "macs": report.macs, "flash": len(tflite), "arena": tflm.arena.bytes,
            "predicted_arena": estimate_arena(model).bytes, "latency_ms": tflm.latency_ms, "train_s": seconds}


def main(arch: str, epochs: int, train_size: int, test_size: int, seed: int, out: str) -> None:
    import tensorflow_model_optimization as tfmot
    import tf_keras

    sparsity = tfmot.sparsity.keras
    data = load_fashion_mnist(train_size=train_size, test_size=test_size)
    (x, y), _ = data
    tf_keras.utils.set_random_seed(seed)
    # The mask is updated every `frequency` steps up to `end`; end - begin must be a multiple of it.
    frequency = max(1, epochs * math.ceil(len(x) / BATCH) // 8)
    schedule = sparsity.PolynomialDecay(0.0, SPARSITY, begin_step=0, end_step=4 * frequency, frequency=frequency)
    model = sparsity.prune_low_magnitude(zoo.ARCHITECTURES[arch](keras=tf_keras), pruning_schedule=schedule)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=BATCH, callbacks=[sparsity.UpdatePruningStep()], verbose=0)
    seconds = time.perf_counter() - start
    model = sparsity.strip_pruning(model)
    kernels = [w for layer in model.layers for w in layer.get_weights() if w.ndim >= 2]
    row = evaluate(model, data, seconds)
    row["zero_fraction"] = float(sum((w == 0).sum() for w in kernels) / sum(w.size for w in kernels))
    # Control: the same graph with every zero replaced by a random weight of the kernel's scale.
    rng = np.random.default_rng(seed)
    model.set_weights([np.where(w == 0, rng.normal(0, w.std(), w.shape), w) if w.ndim >= 2 else w
                       for w in model.get_weights()])
    twin = tflm_export.convert(model, x[:200])
    tflm = tflm_export.verify(twin)
    row["dense_twin"] = {"flash": len(twin), "arena": tflm.arena.bytes, "latency_ms": tflm.latency_ms}
    with open(out, "w") as f:
        json.dump(row, f)


if __name__ == "__main__":
    arch, *numbers, out = sys.argv[1:]
    main(arch, *map(int, numbers), out)
