"""The main job: analyze -> prune (MA by default) -> train from scratch -> int8 TFLM export.

Default settings train on a subset so the whole run finishes in a few minutes on a 2-core CPU;
``--full`` trains on all 60k images for more epochs. Usage:

    python examples/fashion_mnist_pipeline.py [--mode MA] [--ratio 0.5] [--out out/pipeline] [--full]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def train(model, data, epochs: int, batch_size: int = 64, seed: int = 0):
    """Compile and fit ``model`` from its current weights; return (float accuracy, seconds)."""
    import keras

    keras.utils.set_random_seed(seed)
    (x, y), (xt, yt) = data
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=2)
    seconds = time.perf_counter() - start
    return float(model.evaluate(xt, yt, verbose=0)[1]), seconds


def run(out_dir: str, *, mode: str = "MA", ratio: float = 0.5, train_size: int | None = 12000,
        test_size: int | None = 2000, epochs: int = 2, seed: int = 0) -> dict:
    """Run the pipeline; return the before/after table as ``{"baseline": {...}, "pruned": {...}}``."""
    import keras

    from keras_cprune import analyze, prune
    from keras_cprune.datasets import load_fashion_mnist
    from keras_cprune.zoo import vgg

    os.makedirs(out_dir, exist_ok=True)
    print(f"[1/4] Loading Fashion-MNIST (train {train_size or 'all'}, test {test_size or 'all'})")
    data = load_fashion_mnist(train_size=train_size, test_size=test_size)
    keras.utils.set_random_seed(seed)
    baseline = vgg()
    report = analyze(baseline)
    report.summary()
    report.plot(os.path.join(out_dir, "layer_complexity.png"))

    print(f"[2/4] Pruning with mode {mode}, ratio {ratio} (pruned architecture trained from scratch)")
    pruned, plan = prune(baseline, mode, ratio, reinitialize=True, return_plan=True, seed=seed)
    plan.summary()
    with open(os.path.join(out_dir, "plan.json"), "w") as f:
        f.write(plan.to_json(indent=2))

    table = {}
    for i, (name, model) in enumerate((("baseline", baseline), ("pruned", pruned)), start=3):
        print(f"[{i}/4] Training the {name} model for {epochs} epoch(s)")
        accuracy, seconds = train(model, data, epochs, seed=seed)
        r = analyze(model)
        table[name] = {"float_accuracy": accuracy, "train_seconds": seconds, "params": r.params, "macs": r.macs,
                       "peak_act_bytes_int8": r.peak_act_bytes_int8, "weight_bytes_int8": r.weight_bytes_int8}
        model.save(os.path.join(out_dir, f"{name}.keras"))
    print_table(table)
    return table


def print_table(table: dict) -> None:
    rows = list(next(iter(table.values())))
    print(f"\n{'':<22}" + "".join(f"{name:>14}" for name in table))
    for row in rows:
        cells = "".join(f"{v[row]:>14.4f}" if isinstance(v[row], float) else f"{v[row]:>14,}" for v in table.values())
        print(f"{row:<22}{cells}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="MA", choices=["PA", "FA", "MA"])
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--out", default="out/pipeline")
    parser.add_argument("--full", action="store_true", help="all 60k training images, 10 epochs")
    args = parser.parse_args(argv)
    sizes = dict(train_size=None, test_size=None, epochs=10) if args.full else {}
    run(args.out, mode=args.mode, ratio=args.ratio, **sizes)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
