"""The ``keras-cprune`` command line: analyze and prune saved Keras models."""
from __future__ import annotations

import argparse
import sys

from tflm_export.boards import BOARDS
from tflm_export.budget import describe_over
from tflm_export.micro.targets import TARGETS

from keras_cprune.config import CRITERIA, MODES, RULES, PruneConfig, SearchConfig
from keras_cprune.errors import BudgetError, CPruneError, ModelFileError, NoTrialError, OutputPathError, PruningError


DEFAULTS = PruneConfig()  # the pruning options' defaults, from the one place that sets them


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keras-cprune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_analyze, _add_prune, _add_tradeoff, _add_export, _add_tune):
        command = add(sub)
        command.add_argument("--unsafe", action="store_true", help="allow loading Lambda layers (runs code in the file)")
    return parser


def _add_target(command) -> None:
    """--board and --target: the TFLM build whose arena is predicted."""
    command.add_argument("--board", help=f"a known board ({', '.join(BOARDS)}): its RAM and flash (each unless "
                         "given) and its TFLM build (unless --target)")
    command.add_argument("--target", choices=list(TARGETS), help="the TFLM build the arena is for (default: the "
                         "board's; else the PyPI runtime's, measured)")


def _add_budget(command, ram: str, flash: str) -> None:
    """--ram/--flash (sizes such as 48KB), --board, --target and --margin, the budget options of several commands."""
    command.add_argument("--ram", help=ram)
    command.add_argument("--flash", help=flash)
    _add_target(command)
    command.add_argument("--margin", default=0, help="bytes reserved above the arena (e.g. 1KB): ram is judged on "
                         "arena + margin, the kTensorArenaSize the export writes (default 0)")


def _add_analyze(sub):
    analyze = sub.add_parser("analyze", help="per-layer parameters, MACs and activation memory")
    analyze.add_argument("model", help="a .keras or .h5 model file")
    analyze.add_argument("--json", action="store_true", help="print the report as JSON")
    analyze.add_argument("--csv", action="store_true", help="print the per-layer rows as CSV")
    analyze.add_argument("--plot", metavar="PNG", help="save the layer-wise complexity chart")
    return analyze


def _add_prune(sub):
    prune = sub.add_parser("prune", help="complexity-driven filter pruning into a new model file")
    prune.add_argument("model", help="a .keras or .h5 model file")
    prune.add_argument("-o", "--output", required=True, help="where to save the pruned model (.keras/.h5)")
    prune.add_argument("--mode", default="PA", choices=MODES)
    prune.add_argument("--ratio", type=float, default=0.5, help="fraction of filters removed per selected group")
    prune.add_argument("--importance", default=DEFAULTS.importance, choices=CRITERIA)
    prune.add_argument("--rule", default=DEFAULTS.rule, choices=RULES)
    prune.add_argument("--round-to", type=int, default=DEFAULTS.round_to)
    prune.add_argument("--reinitialize", action="store_true", help="fresh weights (train from scratch)")
    prune.add_argument("--min-keep", type=float, default=DEFAULTS.min_keep, help="fraction of each layer's filters "
                       f"kept at least (default {DEFAULTS.min_keep})")
    _add_budget(prune, "prune to a TFLM arena budget instead of --ratio, e.g. 48KB", "flash budget, e.g. 256KB")
    prune.add_argument("--macs", type=int, help="MAC budget")
    prune.add_argument("--data", help=".npy representative inputs that calibrate the measured int8 model")
    prune.add_argument("--no-verify", action="store_true", help="trust the prediction: do not convert and measure "
                       "the result on the TFLM runtime")
    prune.add_argument("--input-shape", help="size for free input dimensions, e.g. 96,96,3")
    prune.add_argument("--per-tensor-dense", action="store_true", help="predict (and fit the budget for) the "
                       "export with Dense weights quantized per tensor, as `export --per-tensor-dense`")
    prune.add_argument("--plan", metavar="JSON", help="also write the pruning plan as JSON")
    prune.add_argument("--overwrite", action="store_true")
    return prune


def _add_tradeoff(sub):
    trade = sub.add_parser("tradeoff", help="params, MACs, predicted arena and flash per mode and ratio")
    trade.add_argument("model", help="a .keras or .h5 model file")
    trade.add_argument("--ratios", default="0,0.2,0.4,0.6,0.8", help="comma-separated ratios in [0, 1)")
    trade.add_argument("--modes", default=",".join(MODES))
    trade.add_argument("--json", action="store_true")
    trade.add_argument("--per-tensor-dense", action="store_true", help="price the export with Dense weights "
                       "quantized per tensor, as `export --per-tensor-dense`")
    trade.add_argument("--plot", metavar="PNG", help="save resources-vs-ratio plot")
    _add_target(trade)
    return trade


def _add_export(sub):
    export = sub.add_parser("export", help="int8 TFLite + TFLM verification + firmware sources")
    export.add_argument("model", help="a .keras or .h5 model file")
    export.add_argument("-o", "--output", "--out", required=True, help="output folder (must not exist)")
    data = export.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", "--calib", help=".npy file of representative inputs (N, *input_shape); "
                      "its first samples also check int8 against the float model")
    data.add_argument("--dataset", choices=["fashion-mnist"], help="calibrate on 200 training images and "
                      "measure int8-on-TFLM and float accuracy on the test set")
    export.add_argument("--test-samples", type=int, default=1000, help="samples run on TFLM (default 1000)")
    export.add_argument("--per-tensor-dense", action="store_true", help="quantize Dense weights per tensor: "
                        "TFLM then keeps no per-unit multipliers and shifts in the arena")
    _add_budget(export, "RAM budget, e.g. 256KB", "flash budget, e.g. 1MB")
    export.add_argument("--overwrite", "--force", action="store_true", help="replace an existing output folder")
    return export


def _add_tune(sub):
    tune = sub.add_parser("tune", help="KerasTuner search: the most accurate pruned model that fits a board")
    tune.add_argument("model", help="a .keras or .h5 model file (its compile settings are used when saved with it)")
    tune.add_argument("-o", "--out", required=True, help="working folder: search/ (KerasTuner project, resumed when "
                      "it exists), best/ (TFLM export), best.keras, trials.png")
    tune.add_argument("--dataset", required=True, choices=["fashion-mnist"])
    tune.add_argument("--trials", type=int, default=10, help="KerasTuner max_trials (default 10)")
    tune.add_argument("--epochs", type=int, default=3)
    tune.add_argument("--train-samples", type=int, default=10000, help="training images (default 10000)")
    tune.add_argument("--val-samples", type=int, default=2000, help="validation images after the training ones")
    tune.add_argument("--test-samples", type=int, default=1000, help="test images run on TFLM for the best model")
    _add_budget(tune, "RAM budget, e.g. 64KB", "flash budget, e.g. 1MB")
    tune.add_argument("--modes", default=",".join(MODES))
    tune.add_argument("--headroom", default="0.7,1.0", help="min,max fraction of the budget a candidate may use")
    tune.add_argument("--oracle", default="random", choices=["random", "bayesian"])
    tune.add_argument("--executions", type=int, default=1, help="trainings per trial (averaged)")
    tune.add_argument("--seed", type=int)
    tune.add_argument("--overwrite", action="store_true", help="start the search over instead of resuming it")
    return tune


def _analyze(args) -> None:
    from keras_cprune.analysis.complexity import analyze
    from keras_cprune.io import load_model

    report = analyze(load_model(args.model, unsafe=args.unsafe))
    if args.json:
        print(report.to_json(indent=2))
    elif args.csv:
        print(report.to_csv(), end="")
    else:
        report.summary()
    if args.plot:
        report.plot(args.plot)


def _prune(args) -> None:
    from keras_cprune.api import apply_plan, plan_pruning, plan_to_budget
    from keras_cprune.io import atomic_path, load_model, save_model

    model = load_model(args.model, unsafe=args.unsafe)
    budget, target = _deployment(args)
    shape = _input_shape(args.input_shape)
    config = PruneConfig(importance=args.importance, rule=args.rule, round_to=args.round_to, min_keep=args.min_keep)
    options = dict(config=config, input_shape=shape, per_channel_dense=not args.per_tensor_dense)
    if budget is None:
        plan = plan_pruning(model, args.mode, args.ratio, target=target, **options)
    else:
        search = SearchConfig(verify=not args.no_verify and "auto")
        plan = plan_to_budget(model, budget, target=target, margin=args.margin, mode=args.mode,
                              search=search, representative_data=_load_array(args.data) if args.data else None,
                              **options)
    pruned = apply_plan(model, plan, reinitialize=args.reinitialize, input_shape=shape)
    plan.summary()
    save_model(pruned, args.output, overwrite=args.overwrite)
    if args.plan:
        with atomic_path(args.plan, overwrite=args.overwrite) as tmp, open(tmp, "w") as f:
            f.write(plan.to_json(indent=2))
    print(f"Saved {args.output}")


def _load_array(path: str):
    """The array in the .npy file ``path``; `ModelFileError` naming it when it cannot be read."""
    import numpy as np

    try:
        return np.load(path)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"Could not read representative data {path!r} ({exc}); expected a .npy array.") from None


def _input_shape(text):
    """``--input-shape`` "96,96,3" as a tuple of ints, None when not given; `ModelError` otherwise."""
    from keras_cprune.errors import ModelError

    if not text:
        return None
    try:
        return tuple(int(d) for d in text.split(","))
    except ValueError:
        raise ModelError(f"--input-shape must be comma-separated sizes, e.g. 96,96,3. Received: {text!r}.") from None


def _deployment(args) -> tuple:
    """``(Budget or None, Target or None)`` of --board, --target and --ram/--flash/--macs: the
    board's limits with those given replaced, and its build unless --target."""
    import dataclasses

    import tflm_export
    from tflm_export.boards import resolve_board

    budget, _, target = resolve_board(board=args.board, target=args.target)
    given = {k: getattr(args, k, None) for k in ("ram", "flash", "macs") if getattr(args, k, None)}
    if given:
        budget = dataclasses.replace(budget, **given) if budget else tflm_export.Budget(**given)
    return budget, target


def _tradeoff(args) -> None:
    from keras_cprune.io import load_model
    from keras_cprune.tradeoff_table import tradeoff

    try:
        ratios = tuple(float(r) for r in args.ratios.split(","))
    except ValueError:
        raise PruningError(f"--ratios must be comma-separated numbers in [0, 1). Received: {args.ratios!r}.") from None
    table = tradeoff(load_model(args.model, unsafe=args.unsafe), modes=tuple(args.modes.split(",")), ratios=ratios,
                     per_channel_dense=not args.per_tensor_dense, target=_deployment(args)[1])
    print(table.to_json(indent=2)) if args.json else table.summary()
    if args.plot:
        table.plot(args.plot)


def _export(args) -> int:
    import tflm_export

    from keras_cprune.io import load_model

    if args.dataset:
        from keras_cprune.datasets import load_fashion_mnist

        (data, _), (test_inputs, labels) = load_fashion_mnist(train_size=200, test_size=args.test_samples)
    else:
        data = _load_array(args.data)
        test_inputs, labels = data[:args.test_samples], None
    budget, target = _deployment(args)
    try:
        report = tflm_export.export(load_model(args.model, unsafe=args.unsafe), data, args.output, budget=budget,
                                    board=args.board, target=target, margin=args.margin, test_inputs=test_inputs, labels=labels,
                                    per_channel_dense=not args.per_tensor_dense, overwrite=args.overwrite)
    except OutputPathError as exc:
        raise OutputPathError(f"{exc} On the command line: pass --force to replace it.") from None
    report.summary()
    if not report.fits:
        print(f"keras-cprune: error: the model does not fit the budget: {describe_over(report.resources)}",
              file=sys.stderr)
        return 1
    return 0


def _tune(args) -> int:
    import os

    from keras_cprune.datasets import load_fashion_mnist
    from keras_cprune.errors import ModelError
    from keras_cprune.io import load_model
    from keras_cprune.tuner.board_fit import BoardFitTuner, is_worker
    from keras_cprune.tuner.hypermodel import classifier_compile_kwargs, compile_config_of

    try:
        low, high = (float(v) for v in args.headroom.split(","))
    except ValueError:
        raise BudgetError(f"--headroom must be two numbers min,max in (0, 1]. Received: {args.headroom!r}.") from None
    budget, target = _deployment(args)
    n = args.train_samples
    (x, y), (x_test, y_test) = load_fashion_mnist(train_size=n + args.val_samples, test_size=args.test_samples)
    model = load_model(args.model, unsafe=args.unsafe)  # every worker loads the same file: the same weights
    if x.shape[1:] != tuple(model.input_shape[1:]):
        raise ModelError(f"--dataset {args.dataset} has inputs of shape {x.shape[1:]}; model {args.model!r} "
                         f"expects {tuple(model.input_shape[1:])}. Give a model with a {x.shape[1:]} input.")
    config = compile_config_of(args.model)
    if config:
        model.compile_from_config(config)
    else:
        model.compile(**classifier_compile_kwargs(model))
    tuner = BoardFitTuner(model, board=args.board, budget=budget, target=target, margin=args.margin, modes=tuple(args.modes.split(",")),
                          headroom=(low, high), max_trials=args.trials,
                          executions_per_trial=args.executions, oracle=args.oracle, seed=args.seed,
                          directory=args.out, project_name="search", overwrite=args.overwrite)
    try:
        tuner.search(x[:n], y[:n], validation_data=(x[n:], y[n:]), epochs=args.epochs, verbose=2)
    except RuntimeError as exc:  # KerasTuner stops after max_consecutive_failed_trials, the last traceback attached
        if "consecutive failures" not in str(exc):
            raise
        last = str(exc).strip().splitlines()[-1]
        raise NoTrialError(f"The search stopped: {str(exc).splitlines()[0]} The last failure: {last} Widen "
                           "--headroom or raise the budget, and pass --overwrite to start over.") from None
    if is_worker():
        return 0
    tuner.summary()
    tuner.plot(os.path.join(args.out, "trials.png"))
    best = tuner.export_best(os.path.join(args.out, "best"), x[:200], test_inputs=x_test, labels=y_test,
                             overwrite=True)
    best.model.save(os.path.join(args.out, "best.keras"))
    print(f"Saved {os.path.join(args.out, 'best.keras')}, {os.path.join(args.out, 'best')}, "
          f"{os.path.join(args.out, 'trials.png')}")
    if not best.fits:
        print(f"keras-cprune: error: no candidate measured within the budget: {describe_over(best.report.resources)}",
              file=sys.stderr)
        return 1
    return 0


def _quiet_startup() -> None:
    """Import TensorFlow (with Keras) and the TFLite converter while their start-up log lines (CPU
    features, oneDNN, CUDA drivers, the absl banner) go to /dev/null: the command prints only its own."""
    from tflm_export.convert import quiet_tensorflow

    with quiet_tensorflow():
        import keras  # noqa: F401  (and TensorFlow, its backend)
        import tensorflow as tf

        tf.lite.TFLiteConverter  # noqa: B018  (loads the converter's own libraries)
        tf.config.list_physical_devices()  # initialises the devices (CUDA's "failed call to cuInit")


def main(argv=None) -> int:
    """Run one command. Exit status: 0 done; 1 done, but the result does not fit its budget
    (``export``, ``tune``); 2 a usage mistake (argparse's usage and message) or any project
    error (`CPruneError`), printed as the one line ``keras-cprune: error: ...``."""
    args = _parser().parse_args(argv)
    _quiet_startup()
    try:
        status = {"analyze": _analyze, "prune": _prune, "tradeoff": _tradeoff, "export": _export,
                  "tune": _tune}[args.command](args)
    except CPruneError as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"keras-cprune: error: {message}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
