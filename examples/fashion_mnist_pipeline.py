"""The main job on Fashion-MNIST: analyze -> prune to a RAM budget -> train -> int8 TFLM export.

Default settings train on a subset so the whole run takes a few minutes on a 2-core CPU;
``--full`` trains on all 60k images for 10 epochs. Usage:

    python examples/fashion_mnist_pipeline.py [--mode MA] [--ram 12KB] [--board nano33ble]
                                              [--out out/pipeline] [--full]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time


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


def run(out_dir: str, *, mode: str = "MA", ram: str = "12KB", board: str = "nano33ble",
        train_size: int | None = 30000, test_size: int | None = 5000, epochs: int = 5, seed: int = 0) -> dict:
    """Run the pipeline into ``out_dir``; return the before/after table ``{"baseline": {...}, "pruned": {...}}``."""
    import keras

    import tflm_export
    from keras_cprune import analyze, apply_plan, plan_to_budget, tradeoff
    from keras_cprune.datasets import load_fashion_mnist
    from keras_cprune.zoo import vgg

    os.makedirs(out_dir, exist_ok=True)
    print(f"[1/5] Loading Fashion-MNIST (train {train_size or 'all'}, test {test_size or 'all'})")
    data = load_fashion_mnist(train_size=train_size, test_size=test_size)
    (x, _), (xt, yt) = data
    keras.utils.set_random_seed(seed)
    baseline = vgg()
    report = analyze(baseline)
    report.summary()
    report.plot(os.path.join(out_dir, "layer_complexity.png"))
    tradeoff(baseline).plot(os.path.join(out_dir, "tradeoff.png"))

    print(f"[2/5] Pruning with mode {mode} to a tensor-arena budget of {ram} on {board}'s TFLM build "
          "(least pruning that fits)")
    plan = plan_to_budget(baseline, tflm_export.Budget(ram=ram), board=board, mode=mode, seed=seed)
    pruned = apply_plan(baseline, plan, reinitialize=True)
    plan.summary()
    with open(os.path.join(out_dir, "plan.json"), "w") as f:
        f.write(plan.to_json(indent=2))

    table = {}
    for step, (name, model) in enumerate((("baseline", baseline), ("pruned", pruned)), start=3):
        print(f"[{step}/5] Training the {name} model from scratch for {epochs} epoch(s), then int8 export + TFLM")
        accuracy, seconds = train(model, data, epochs, seed=seed)
        folder = os.path.join(out_dir, f"{name}_firmware")
        shutil.rmtree(folder, ignore_errors=True)
        tflm = tflm_export.export(model, x[:200], folder, board=board, test_inputs=xt, labels=yt, name=name)
        tflm.summary()
        r = analyze(model)
        table[name] = {"float_accuracy": accuracy, "int8_tflm_accuracy": tflm.int8_accuracy,
                       "params": r.params, "macs": r.macs, "flash_bytes": tflm.flash_bytes,
                       "arena_bytes": tflm.arena.bytes, "latency_ms": tflm.latency_ms, "train_seconds": seconds,
                       "fits_" + board: tflm.fits}
        model.save(os.path.join(out_dir, f"{name}.keras"))
    print("[5/5] Before/after")
    print_table(table)
    with open(os.path.join(out_dir, "table.json"), "w") as f:
        json.dump(table, f, indent=2)
    return table


def print_table(table: dict) -> None:
    rows = list(next(iter(table.values())))
    print(f"\n{'':<22}" + "".join(f"{name:>14}" for name in table))
    for row in rows:
        cells = "".join(f"{v[row]!s:>14}" if isinstance(v[row], bool) else f"{v[row]:>14.4f}"
                        if isinstance(v[row], float) else f"{v[row]:>14,}" for v in table.values())
        print(f"{row:<22}{cells}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="MA", choices=["PA", "FA", "MA"])
    parser.add_argument("--ram", default="12KB", help="tensor arena budget of the pruned model")
    parser.add_argument("--board", default="nano33ble", help="board whose SRAM/flash the exports are checked against")
    parser.add_argument("--out", default="out/pipeline")
    parser.add_argument("--full", action="store_true", help="all 60k training images, 10 epochs")
    args = parser.parse_args(argv)
    sizes = dict(train_size=None, test_size=None, epochs=10) if args.full else {}
    run(args.out, mode=args.mode, ram=args.ram, board=args.board, **sizes)


if __name__ == "__main__":
    main()
