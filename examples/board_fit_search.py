"""The most accurate pruned VGG that fits a budget, on Fashion-MNIST: a KerasTuner search.

The baseline is trained briefly (so "keep weights" candidates start from something), then
`BoardFitTuner` tries modes, allocation rules, importances, budget fractions and training from
scratch; the best is measured on the real TFLM runtime and exported. Default settings take
about 10 minutes on a 2-core CPU; ``--quick`` runs a tiny version in about a minute.

    python examples/board_fit_search.py [--ram 12KB | --board nano33ble] [--trials 12] [--out out/board_fit]

Chief and workers (KerasTuner's environment variables) train the baseline once, then share it:

    python examples/board_fit_search.py --pretrain-only            # writes out/board_fit/baseline.keras
    KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=8000 KERASTUNER_TUNER_ID=chief \\
        python examples/board_fit_search.py --model out/board_fit/baseline.keras &
    KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=8000 KERASTUNER_TUNER_ID=tuner0 \\
        python examples/board_fit_search.py --model out/board_fit/baseline.keras   # and tuner1, ...
"""
from __future__ import annotations

import argparse
import os


def baseline(path: str, data, epochs: int, seed: int) -> str:
    """Train the reference VGG for ``epochs`` and save it, compiled, to ``path``."""
    import keras

    from keras_cprune.zoo import vgg

    keras.utils.set_random_seed(seed)
    (x, y), (xv, yv) = data
    model = vgg()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, validation_data=(xv, yv), epochs=epochs, batch_size=64, verbose=2)
    model.save(path)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ram", default="12KB", help="tensor arena budget (default 12KB)")
    parser.add_argument("--flash", default=None, help="flash budget, e.g. 64KB")
    parser.add_argument("--board", help="a board's whole SRAM and flash instead of --ram/--flash")
    parser.add_argument("--model", help="a compiled .keras baseline (skips training one)")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial")
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--pretrain-only", action="store_true")
    parser.add_argument("--headroom", default="0.8,1.0", help="min,max fraction of the budget to use")
    parser.add_argument("--oracle", default="random", choices=["random", "bayesian"])
    parser.add_argument("--out", default="out/board_fit")
    parser.add_argument("--quick", action="store_true", help="2 trials of 1 epoch on 1,000 images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import tflm_export
    from keras_cprune.datasets import load_fashion_mnist
    from keras_cprune.tuner.board_fit import BoardFitTuner, is_worker

    sizes = (1000, 300, 200) if args.quick else (10000, 2000, 2000)
    trials, epochs, pretrain = (2, 1, 1) if args.quick else (args.trials, args.epochs, args.pretrain_epochs)
    (x, y), (xt, yt) = load_fashion_mnist(train_size=sizes[0] + sizes[1], test_size=sizes[2])
    train, val = (x[:sizes[0]], y[:sizes[0]]), (x[sizes[0]:], y[sizes[0]:])
    os.makedirs(args.out, exist_ok=True)
    model = args.model
    if model is None:
        if is_worker():
            raise SystemExit("A worker needs --model: the baseline every process prunes must be the same file.")
        model = baseline(os.path.join(args.out, "baseline.keras"), (train, val), pretrain, args.seed)
    if args.pretrain_only:
        return
    budget = None if args.board else tflm_export.Budget(ram=args.ram, flash=args.flash)
    tuner = BoardFitTuner(model, board=args.board, budget=budget, headroom=tuple(map(float, args.headroom.split(","))),
                          max_trials=trials, oracle=args.oracle, seed=args.seed,
                          directory=args.out, project_name="search")
    tuner.search(*train, validation_data=val, epochs=epochs, batch_size=64, verbose=2)
    if is_worker():
        return
    tuner.results_summary(3)
    tuner.summary()
    print(f"Trade-off plot: {tuner.plot(os.path.join(args.out, 'trials.png'))}")
    best = tuner.export_best(os.path.join(args.out, "best"), x[:200], test_inputs=xt, labels=yt, overwrite=True)
    best.model.save(os.path.join(args.out, "best.keras"))
    print(f"Best: trial {best.trial_id} {best.values}: int8 accuracy on TFLM {best.report.int8_accuracy:.4f}, "
          f"arena {best.report.arena.bytes:,} B, flash {best.report.flash_bytes:,} B, fits: {best.fits}")


if __name__ == "__main__":
    main()
