"""Pruning methods side by side on Fashion-MNIST: one run, same data, seeds and epochs per model.

For each `keras_cprune.zoo` architecture: the unpruned baseline; complexity-driven PA, FA and MA,
each at 50% of its own resource (parameters, MACs, predicted TFLM arena bytes), retrained from
scratch; the uniform width multiplier at the same budgets; train -> L1 prune -> fine-tune at the
FA budget; tensorflow-model-optimization magnitude pruning to 50% sparsity (tf_keras, in a
subprocess). Every model is converted to int8 and the whole test set runs on the TFLM runtime.

    python benchmarks/compare_methods.py [--quick] [--archs vgg,resnet,mobilenetv2] [--markdown FILE] [--plot PNG]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

from _common import machine
from _tfmot_child import BATCH, SPARSITY, evaluate

import keras
import tensorflow as tf

from keras_cprune import analyze, estimate_arena, prune, zoo
from keras_cprune.deploy.arena import estimate_graph_arena
from keras_cprune.datasets import load_fashion_mnist
from keras_cprune.pruning.context import PruneContext

warnings.filterwarnings("ignore", category=UserWarning)  # tf.lite.Interpreter deprecation, per model
tf.get_logger().setLevel("ERROR")  # predict() retracing notices, per model
TARGET = 0.5  # every budget: half of the baseline's resource
MAX_RATIO = 0.95
RESOURCE = {"PA": "params", "FA": "macs", "MA": "arena"}  # arena: predicted TFLM arena bytes
RUNS = {"quick": dict(train_size=3000, test_size=1000, epochs=2),  # times: docs/BENCHMARKS.md
        "full": dict(train_size=10000, test_size=10000, epochs=3)}  # the whole test set runs on TFLM
FAMILIES = ("baseline", "PA", "FA", "MA", "uniform width", "train", "tfmot")  # method names start so
COLUMNS = (("float acc", "float_acc", "{:.4f}"), ("int8 acc (TFLM)", "int8_acc", "{:.4f}"),
           ("params", "params", "{:,}"), ("MACs", "macs", "{:,}"), ("flash B", "flash", "{:,}"),
           ("arena B", "arena", "{:,}"), ("latency ms", "latency_ms", "{:.2f}"), ("train s", "train_s", "{:.0f}"))


def fit(model, data, epochs: int, seed: int, *, compile: bool = True) -> float:
    """Train on logits with Adam(1e-3), batch 64; wall seconds. ``compile=False`` continues the
    model's optimizer (the second half of a run split in two)."""
    (x, y), _ = data
    keras.utils.set_random_seed(seed)
    if compile:
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=BATCH, verbose=0)
    return time.perf_counter() - start


def usage(model) -> dict:
    """Params, MACs and predicted TFLM arena bytes of a Keras model."""
    report = analyze(model)
    return {"params": report.params, "macs": report.macs, "arena": estimate_arena(model).bytes}


def plan_cost(context: PruneContext, removed: set, resource: str) -> int:
    """``resource`` of the model with ``removed`` units gone, priced without rebuilding it."""
    if resource == "arena":
        return estimate_graph_arena(context.graph, context.deps.pruned_shapes(removed)).bytes
    return getattr(context.price(removed), resource)


def bisect(ok, bad: float, good: float, steps: int = 12) -> float:
    """The value nearest ``bad`` in [bad, good] where ``ok`` holds (``ok(good)`` must), within
    |good - bad| / 2**steps; ``ok`` must flip once between them."""
    for _ in range(steps):
        middle = (bad + good) / 2
        bad, good = (bad, middle) if ok(middle) else (middle, good)
    return good


def find_ratio(model, mode: str, limit: int) -> tuple[float, str]:
    """Least ``ratio`` whose ``mode`` plan brings the mode's resource to ``limit``, and the rule
    used: "mean" (the paper's) if it gets there by MAX_RATIO, else "all" (every group)."""
    context = PruneContext.of(model)
    resource = RESOURCE[mode]
    for rule in ("mean", "all"):
        def ok(ratio, rule=rule):
            return plan_cost(context, context.plan(mode, ratio, rule=rule)[1], resource) <= limit
        if ok(MAX_RATIO):
            return bisect(ok, 0.0, MAX_RATIO), rule
    return MAX_RATIO, "all"  # out of reach: the table shows how far it got


def find_width(arch: str, resource: str, limit: int) -> float:
    """Largest uniform width multiplier of ``arch`` whose ``resource`` is at most ``limit``."""
    return bisect(lambda w: usage(zoo.ARCHITECTURES[arch](width=w))[resource] <= limit, 1.0, 0.05, steps=10)


def tfmot_row(arch: str, run: dict, seed: int) -> dict:
    """The tfmot row, measured in a tf_keras interpreter (`_tfmot_child.py`)."""
    child = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_tfmot_child.py")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "row.json")
        args = [arch, run["epochs"], run["train_size"], run["test_size"], seed, out]
        result = subprocess.run([sys.executable, child, *map(str, args)], capture_output=True, text=True,
                                env={**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"})
        if result.returncode != 0:
            raise RuntimeError(f"The tfmot child failed for {arch!r} (exit code {result.returncode}):\n"
                               f"{result.stderr[-3000:]}")
        with open(out) as f:
            return json.load(f)


def compare(arch: str, data, run: dict, seed: int) -> list[dict]:
    """Rows for one architecture: method, budget met, and `evaluate`'s measurements."""
    build, epochs = zoo.ARCHITECTURES[arch], run["epochs"]
    half = max(1, epochs // 2)
    rows = []

    def add(method, model, seconds, *resources):
        row = {"arch": arch, "method": method, **evaluate(model, data, seconds)}
        keys = ["predicted_arena" if r == "arena" else r for r in resources]  # vs the trained baseline's
        row["budget"] = ", ".join(f"{r} ×{row[k] / rows[0][k]:.2f}" for r, k in zip(resources, keys)) or "—"
        rows.append(row)
        show(row)

    keras.utils.set_random_seed(seed)
    baseline = build()
    dense_s = seconds = fit(baseline, data, half, seed)  # the train -> prune -> fine-tune row branches off here
    limits = {r: int(TARGET * v) for r, v in usage(baseline).items()}  # trained: no all-zero biases dropped
    ratios = {mode: find_ratio(baseline, mode, limits[RESOURCE[mode]]) for mode in RESOURCE}
    l1_pruned = prune(baseline, "FA", ratios["FA"][0], rule=ratios["FA"][1])  # keeps the largest-L1 filters
    if epochs > half:
        seconds += fit(baseline, data, epochs - half, seed, compile=False)
    add("baseline", baseline, seconds)

    for mode, (ratio, rule) in ratios.items():
        keras.utils.set_random_seed(seed)
        model = prune(build(), mode, ratio, rule=rule, reinitialize=True, seed=seed)
        add(f"{mode} (ratio {ratio:.3f}{', rule=all' if rule == 'all' else ''})", model,
            fit(model, data, epochs, seed), RESOURCE[mode])

    uniform = {}  # width -> budgets it meets; a width at most 0.01 above a chosen one shares its (narrower) model
    for width, resource in sorted((find_width(arch, r, limits[r]), r) for r in RESOURCE.values()):
        near = [w for w in uniform if width - w <= 0.01]
        uniform.setdefault(near[0] if near else width, []).append(resource)
    for width, resources in uniform.items():
        keras.utils.set_random_seed(seed)
        model = build(width=width)
        add(f"uniform width {width:.3f}", model, fit(model, data, epochs, seed), *resources)

    keras.utils.set_random_seed(seed)
    tuned = fit(l1_pruned, data, epochs - half, seed) if epochs > half else 0.0
    add(f"train {half} ep -> L1 prune FA -> fine-tune {epochs - half} ep", l1_pruned,
        dense_s + tuned, "macs")

    row = {"arch": arch, "method": f"tfmot magnitude {SPARSITY:.0%} sparsity", **tfmot_row(arch, run, seed)}
    twin = row.pop("dense_twin")
    row["budget"] = (f"{row.pop('zero_fraction'):.0%} zero weights (twin without zeros: flash {twin['flash']:,} B, "
                     f"arena {twin['arena']:,} B, {twin['latency_ms']:.2f} ms)")
    rows.append(row)
    show(row)
    return rows


def show(row: dict) -> None:
    print(f"{row['arch']:<12} {row['method']:<40} float {row['float_acc']:.4f}  int8 {row['int8_acc']:.4f}  "
          f"params {row['params']:>7,}  MACs {row['macs']:>10,}  arena {row['arena']:>6,} B  "
          f"{row['latency_ms']:5.2f} ms  train {row['train_s']:3.0f} s  {row['budget']}", flush=True)


def markdown(rows: list[dict]) -> str:
    header = ["arch", "method", "budget met"] + [name for name, _, _ in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "| --- | --- | --- |" + " ---: |" * len(COLUMNS)]
    for row in rows:
        cells = [row["arch"], row["method"], row["budget"]] + [fmt.format(row[key]) for _, key, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: str) -> None:
    """int8-on-TFLM accuracy vs params, MACs and measured arena: a row of panels per architecture."""
    from keras_cprune.plots import _pyplot

    plt = _pyplot()
    archs = list(dict.fromkeys(row["arch"] for row in rows))
    fig, axes = plt.subplots(len(archs), 3, figsize=(13, 3.4 * len(archs)), squeeze=False)
    for axes_row, arch in zip(axes, archs):
        for ax, (key, label) in zip(axes_row, (("params", "parameters"), ("macs", "MACs"), ("arena", "arena (B)"))):
            for family, color in zip(FAMILIES, plt.rcParams["axes.prop_cycle"].by_key()["color"]):
                points = [r for r in rows if r["arch"] == arch and r["method"].startswith(family)]
                ax.plot([r[key] for r in points], [r["int8_acc"] for r in points], color=color, linestyle="none",
                        marker="*" if family == "baseline" else "o", markersize=11 if family == "baseline" else 7,
                        label="train -> prune -> fine-tune" if family == "train" else family)
            ax.set_xlabel(label)
            ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
            ax.grid(alpha=0.3)
        axes_row[0].set_ylabel(f"{arch}: int8 accuracy on TFLM")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Fashion-MNIST: accuracy vs resources, per method (benchmarks/compare_methods.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3000 training / 1000 test images, 2 epochs (default: 10000 / all 10000, 3 epochs)")
    parser.add_argument("--archs", default=",".join(zoo.ARCHITECTURES), help="comma-separated zoo architectures")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table to FILE")
    parser.add_argument("--plot", metavar="PNG", help="also plot accuracy vs resources to PNG")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    unknown = set(args.archs.split(",")) - set(zoo.ARCHITECTURES)
    if unknown:
        parser.error(f"--archs takes names of {sorted(zoo.ARCHITECTURES)}. Received: {sorted(unknown)}.")
    run = RUNS["quick" if args.quick else "full"]
    print(f"machine: {machine()}; {run}", flush=True)
    data = load_fashion_mnist(train_size=run["train_size"], test_size=run["test_size"])
    start = time.perf_counter()
    rows = []
    for arch in args.archs.split(","):
        rows += compare(arch, data, run, args.seed)
        print(f"{arch}: done at {time.perf_counter() - start:.0f} s", flush=True)
    table = markdown(rows)
    print(f"\ntotal {time.perf_counter() - start:.0f} s\n\n{table}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
