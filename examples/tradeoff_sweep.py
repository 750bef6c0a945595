"""Accuracy vs resources: PA/FA/MA at several ratios, each pruned model trained from scratch.

The trade-off the paper presents to help choose a mode and ratio. Usage:
    python examples/tradeoff_sweep.py [--ratios 0.25,0.5,0.75] [--out out/sweep] [--full]
"""
from __future__ import annotations

import argparse
import json
import os

from fashion_mnist_pipeline import train


def run(out_dir: str, *, modes=("PA", "FA", "MA"), ratios=(0.25, 0.5, 0.75), train_size=6000, test_size=1000,
        epochs: int = 2, seed: int = 0) -> list:
    """Train the baseline and every (mode, ratio) point; save ``sweep.json`` and ``sweep.png``."""
    from keras_cprune import analyze, estimate_arena, prune
    from keras_cprune.datasets import load_fashion_mnist
    from keras_cprune.plots import plot_accuracy_tradeoff
    from keras_cprune.zoo import vgg

    os.makedirs(out_dir, exist_ok=True)
    data = load_fashion_mnist(train_size=train_size, test_size=test_size)
    points = []
    configs = [("baseline", 0.0)] + [(m, r) for m in modes for r in ratios]
    for i, (mode, ratio) in enumerate(configs, start=1):
        print(f"[{i}/{len(configs)}] {mode} ratio {ratio}")
        model = vgg() if mode == "baseline" else prune(vgg(), mode, ratio, reinitialize=True, seed=seed)
        report = analyze(model)
        arena = estimate_arena(model).bytes
        accuracy, seconds = train(model, data, epochs, seed=seed)
        points.append({"mode": mode, "ratio": ratio, "accuracy": accuracy, "train_seconds": seconds,
                       "params": report.params, "flops": report.flops,
                       "peak_act_bytes_int8": report.peak_act_bytes_int8, "arena_bytes": arena})
        print(json.dumps(points[-1]))
    with open(os.path.join(out_dir, "sweep.json"), "w") as f:
        json.dump(points, f, indent=2)
    plot_accuracy_tradeoff(points, os.path.join(out_dir, "sweep.png"))
    return points


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratios", default="0.25,0.5,0.75")
    parser.add_argument("--out", default="out/sweep")
    parser.add_argument("--full", action="store_true", help="all 60k images, 10 epochs")
    args = parser.parse_args(argv)
    sizes = dict(train_size=None, test_size=None, epochs=10) if args.full else {}
    run(args.out, ratios=tuple(float(r) for r in args.ratios.split(",")), **sizes)


if __name__ == "__main__":
    main()
