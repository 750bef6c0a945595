"""The board-fit tuner's best model vs the paper-rule MA at the same RAM budget (issue 15): one JSON per method and seed.

The zoo's ``vgg`` on Fashion-MNIST, the accuracy protocol's fixed validation split (5,000 of the 60,000
training images, ``accuracy_sweep.load_data``) and its training (Adam, cosine decay from 1e-3 to 0, batch
128, jit_compile=False), on the first ``--train-size`` of the other 55,000 images for ``--epochs`` (a
CPU-sized deviation from the protocol's 55,000 x 5). Per seed k, every model fits ``--ram`` (12KB, the
main job's default):

- ``MA-paper``: ``prune(vgg(), "MA", budget=Budget(ram=...), allocation="paper", reinitialize=True)``, trained;
- ``MA-cost``: the same with ``allocation="cost"`` (the default);
- ``tuner``: ``BoardFitTuner(vgg(), budget=..., max_trials=6, seed=k, objective="val_accuracy",
  headroom=(0.8, 1.0))`` searched with the same data, epochs and optimizer (trials see the validation
  split only), then ``export_best`` (measured on TFLM, the next best candidate if over budget).

Every final model's float accuracy is read on the 10,000 test images and its int8 flatbuffer runs the whole
test set on the TFLM runtime (measured arena and flash). Files that exist are skipped (the run resumes).

    python benchmarks/bench_tuner.py [--seeds 0,1,2] [--methods MA-paper,MA-cost,tuner] [--out docs/results/tuner]
    python benchmarks/bench_tuner.py --report [FILE]     # markdown tables from the JSON files
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

from _common import emit, git_version, machine, read_results, t_interval, write_json
from accuracy_sweep import BATCH, JIT, LR, SPLIT_SEED, load_data, train
from _tfmot_child import evaluate

import keras

from keras_cprune import Budget, SearchConfig, analyze, apply_plan, estimate_arena, plan_to_budget
from keras_cprune.zoo import vgg

ARCH = "vgg"
METHODS = ("MA-paper", "MA-cost", "tuner")
BASELINE = "MA-paper"  # paired differences are against it
TRIALS, HEADROOM = 6, (0.8, 1.0)
OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "results", "tuner"))


def name_of(method: str, ram: str, seed: int) -> str:
    return f"{ARCH}-{method}-{ram}-seed{seed}"


def widths(model) -> dict:
    """Filters / units of every Conv2D and Dense layer."""
    return {layer.name: int(getattr(layer, "filters", None) or layer.units) for layer in model.layers
            if hasattr(layer, "filters") or hasattr(layer, "units")}


def float_accuracy(model, test) -> float:
    x, y = test
    return float(np.mean(np.argmax(model.predict(x, batch_size=1000, verbose=0), -1) == y))


class Clock:
    """Wall and CPU seconds (this process, all threads) since construction."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> dict:
        return {"wall_s": round(time.perf_counter() - self.wall, 2), "cpu_s": round(time.process_time() - self.cpu, 2)}


def run_prune(method: str, seed: int, data, args) -> dict:
    """The paper's pipeline: MA to the budget (``allocation`` "paper" or "cost"), trained from scratch."""
    allocation = method.split("-", 1)[1]
    clock = Clock()
    keras.utils.set_random_seed(seed)
    model = vgg()
    plan = plan_to_budget(model, Budget(ram=args.ram), mode="MA", search=SearchConfig(allocation=allocation),
                          verbose=0, seed=seed)
    pruned = apply_plan(model, plan, reinitialize=True)
    pruning = clock.read()
    shared = same_architecture(pruned, seed, args) if allocation != "paper" else None
    if shared is not None:  # the same widths, weights and seeds train to the same model: not trained twice
        keep = ("log", "val_acc", "test_acc", "int8_test_acc", "params", "macs", "arena", "predicted_arena", "flash",
                "latency_ms", "train_s", "train_cpu_s")
        spent = {k: round(shared[k] - shared["pruning"][k] + pruning[k], 2) for k in ("wall_s", "cpu_s")}
        return {"config": {"allocation": allocation, "mode": "MA", "reinitialize": True}, "pruning": pruning,
                "plan_after": plan.after.to_dict(), "widths": widths(pruned), **{k: shared[k] for k in keep},
                "shared_with": shared["name"], **spent}
    log = train(pruned, data, args.epochs, seed, name_of(method, args.ram, seed))
    (x, y), _, test = data
    measured = evaluate(pruned, ((x, y), test), 0.0)
    return {"config": {"allocation": allocation, "mode": "MA", "reinitialize": True}, "pruning": pruning,
            "plan_after": plan.after.to_dict(), "widths": widths(pruned), "log": log, "val_acc": log[-1]["val_acc"],
            "test_acc": measured["float_acc"], "int8_test_acc": measured["int8_acc"], "params": measured["params"],
            "macs": measured["macs"], "arena": measured["arena"], "predicted_arena": measured["predicted_arena"],
            "flash": measured["flash"], "latency_ms": measured["latency_ms"],
            "train_s": log[-1]["train_s"], "train_cpu_s": log[-1]["cpu_s"], **clock.read()}


def same_architecture(pruned, seed: int, args) -> dict | None:
    """The paper-rule MA record of ``seed`` when its pruned model has the same widths as ``pruned``."""
    path = os.path.join(args.out, name_of(BASELINE, args.ram, seed) + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        record = json.load(f)
    return record if record["widths"] == widths(pruned) else None


class TrialLog(keras.callbacks.Callback):
    """Per trial, per epoch: validation accuracy, loss, wall and CPU seconds since the fit began. KerasTuner
    deep-copies callbacks for every trial and records only each trial's best epoch, so the log is kept at
    class level, under the trial that `recording`'s tuner says is running."""

    trials: dict = {}
    current = None

    def on_train_begin(self, logs=None):
        self.clock = Clock()

    def on_epoch_end(self, epoch, logs=None):
        TrialLog.trials.setdefault(TrialLog.current, {"epochs": []})["epochs"].append(
            {"epoch": epoch + 1, "val_acc": float(logs["val_accuracy"]), "loss": float(logs["loss"]),
             **self.clock.read()})


def recording(tuner_class):
    """``tuner_class`` that also tells `TrialLog` which trial runs and times each trial (build + fit);
    nothing else changes."""
    class Recording(tuner_class):
        def on_trial_begin(self, trial):
            TrialLog.current, self._trial_clock = trial.trial_id, Clock()
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            TrialLog.trials.setdefault(trial.trial_id, {"epochs": []}).update(self._trial_clock.read())
            super().on_trial_end(trial)

    return Recording


def run_tuner(seed: int, data, args) -> dict:
    """BoardFitTuner on the untrained vgg of this seed, trained as the protocol trains; export_best measured on TFLM."""
    from keras_cprune.tuner.board_fit import BoardFitTuner

    (x, y), val, test = data
    steps = args.epochs * math.ceil(len(x) / BATCH)
    compile_kwargs = {"optimizer": keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(LR, steps)),
                      "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True), "metrics": ["accuracy"],
                      "jit_compile": JIT}  # a fresh copy of the optimizer per trial
    directory = tempfile.mkdtemp(prefix=f"bench_tuner_seed{seed}_")
    clock = Clock()
    try:
        keras.utils.set_random_seed(seed)
        TrialLog.trials = {}
        tuner = recording(BoardFitTuner)(vgg(), budget=Budget(ram=args.ram), max_trials=args.trials, seed=seed,
                              objective="val_accuracy", directory=directory, project_name="search",
                              headroom=HEADROOM, compile_kwargs=compile_kwargs, overwrite=True)
        tuner.search(x, y, validation_data=val, epochs=args.epochs, batch_size=BATCH, verbose=0,
                     callbacks=[TrialLog()])
        search = clock.read()
        trials = []
        for trial in tuner.oracle.trials.values():  # score: the best epoch's val_accuracy (KerasTuner's)
            trials.append({"trial_id": trial.trial_id, "status": str(trial.status), "score": trial.score,
                           "values": dict(trial.hyperparameters.values), **TrialLog.trials.get(trial.trial_id, {}),
                           "message": (getattr(trial, "message", None) or "")[:300] or None})
        points = {p.trial_id: p.to_dict() for p in tuner.points()}
        for t in trials:
            t["predicted"] = points.get(t["trial_id"])
        best = tuner.export_best(os.path.join(directory, "best"), x[:200], test_inputs=test[0], labels=test[1],
                                 overwrite=True)
        report = best.report
        model = best.model
        float_acc = float_accuracy(model, test)
        complexity = analyze(model)
        history = [e["val_acc"] for e in TrialLog.trials.get(best.trial_id, {}).get("epochs", [])]
        record = {"config": {"max_trials": args.trials, "headroom": list(HEADROOM), "oracle": "random",
                             "objective": "val_accuracy", "search_space": tuner.oracle.hyperparameters.get_config()},
                  "search": search, "trials": trials,
                  "completed": sum(t["status"].endswith("COMPLETED") for t in trials),
                  "failed": sum(t["status"].endswith("FAILED") for t in trials),
                  "best": {"trial_id": best.trial_id, "values": best.values, "val_score": best.score,
                           "best_epoch": int(np.argmax(history)) + 1 if history else None,  # the checkpoint KerasTuner keeps
                           "fits": bool(best.fits), "rank": [t.trial_id for t in tuner.oracle.get_best_trials(3)]
                           .index(best.trial_id) + 1},
                  "widths": widths(model), "val_acc": float(best.score),
                  "test_acc": float_acc, "int8_test_acc": report.int8_accuracy,
                  "tflm_float_acc": report.float_accuracy, "params": complexity.params, "macs": complexity.macs,
                  "arena": report.arena.bytes, "predicted_arena": estimate_arena(model, assume_trained=True).bytes,
                  "flash": report.flash_bytes, "flatbuffer_bytes": report.flatbuffer_bytes,
                  "latency_ms": report.latency_ms, "fits": bool(report.fits),
                  "train_s": search["wall_s"], "train_cpu_s": search["cpu_s"]}
        record.update(clock.read())
        return record
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def bench(args) -> None:
    data = load_data(args.train_size)
    (x, _), (xv, _), (xt, _) = data
    print(f"machine: {machine()}; code {git_version()}; train {len(x)}, val {len(xv)}, test {len(xt)}; "
          f"{args.epochs} epochs, batch {BATCH}, budget ram={args.ram}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    for seed in args.seeds:
        for method in args.methods:
            name = name_of(method, args.ram, seed)
            path = os.path.join(args.out, name + ".json")
            if os.path.exists(path):
                continue
            body = run_tuner(seed, data, args) if method == "tuner" else run_prune(method, seed, data, args)
            record = {"name": name, "method": method, "seed": seed, "arch": ARCH, "budget": {"ram": args.ram},
                      "protocol": {"epochs": args.epochs, "batch": BATCH, "optimizer": "Adam", "lr": LR,
                                   "schedule": "cosine decay to 0", "jit_compile": JIT, "train_size": len(x),
                                   "val_size": len(xv), "test_size": len(xt), "split_seed": SPLIT_SEED},
                      "code_version": args.code_version or git_version(), "machine": machine(),
                      "finished": datetime.datetime.now().isoformat(timespec="seconds"), **body}
            write_json(path, record)
            print(f"{name}: test {record['test_acc']:.4f}, int8 {record['int8_test_acc']:.4f}, arena "
                  f"{record['arena']:,} B, {record['wall_s']:.0f} s wall / {record['cpu_s']:.0f} s CPU; "
                  f"{time.perf_counter() - start:.0f} s so far", flush=True)


# ---------------------------------------------------------------- report
def load(out: str) -> dict:
    records = {}
    for r in read_results(out):
        records.setdefault(r["method"], {})[r["seed"]] = r
    return records


def mean_sd(values, scale=100.0, digits=2) -> str:
    values = [scale * v for v in values]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"


def paired(runs: dict, base: dict, key: str) -> str:
    diffs = [100 * (runs[s][key] - base[s][key]) for s in sorted(runs) if s in base]
    if not diffs:
        return "—"
    mean, half = t_interval(diffs)
    if half != half:
        return f"{mean:+.2f} (n=1)"
    return f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]"


def spread(values) -> str:
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def report(out: str) -> str:
    records = load(out)
    base = records.get(BASELINE, {})
    lines = ["| method | seeds | float test acc % | int8 TFLM test acc % | Δ float vs paper MA pp, mean [95% t] | "
             "Δ int8 vs paper MA pp | arena B (TFLM) | params | MACs | wall s | CPU s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for method in [m for m in METHODS if m in records] + sorted(set(records) - set(METHODS)):
        runs = records[method]
        rs = [runs[s] for s in sorted(runs)]
        same = method == BASELINE
        shared = sum(bool(r.get("shared_with")) for r in rs)
        label = method + (f" (the {BASELINE} model: same widths in {shared}/{len(rs)} seeds)" if shared else "")
        lines.append("| " + " | ".join([
            label, str(len(rs)), mean_sd([r["test_acc"] for r in rs]), mean_sd([r["int8_test_acc"] for r in rs]),
            "—" if same else paired(runs, base, "test_acc"), "—" if same else paired(runs, base, "int8_test_acc"),
            spread([r["arena"] for r in rs]), spread([r["params"] for r in rs]), spread([r["macs"] for r in rs]),
            f"{statistics.fmean(r['wall_s'] for r in rs):,.0f}", f"{statistics.fmean(r['cpu_s'] for r in rs):,.0f}"])
            + " |")
    tuned = records.get("tuner", {})
    if tuned:
        lines += ["", "| seed | tuner's best trial (exported) | its val acc % (epoch kept) | completed / failed trials: "
                  "val acc % range | arena B (TFLM) | fits | search + export wall s, CPU s | paper MA: val acc % "
                  "(last epoch), arena B |",
                  "| ---: | --- | ---: | ---: | ---: | --- | ---: | ---: |"]
        for seed in sorted(tuned):
            r = tuned[seed]
            v = r["best"]["values"]
            what = (f"{v.get('mode')}, allocation {v.get('allocation', 'cost')}, rule {v.get('rule')}, "
                    f"{v.get('importance')}, ×{v.get('budget_fraction', 1):.2f} of the budget, "
                    f"{'from scratch' if v.get('reinitialize') else 'kept (untrained) weights'}; "
                    + ", ".join(f"{k} {n}" for k, n in r["widths"].items() if k != "logits"))
            paper = base.get(seed)
            done = [100 * t["score"] for t in r["trials"] if t.get("score") is not None]
            scores = f"{min(done):.2f}–{max(done):.2f}" if done else "—"
            lines.append(f"| {seed} | {what} | {100 * r['val_acc']:.2f} (epoch {r['best']['best_epoch'] or '?'}) | "
                         f"{r['completed']} / {r['failed']}: {scores} | {r['arena']:,} | "
                         f"{'yes' if r['fits'] else 'NO'} | {r['wall_s']:,.0f}, {r['cpu_s']:,.0f} | "
                         + (f"{100 * paper['val_acc']:.2f}, {paper['arena']:,} |" if paper else "— |"))
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--methods", default=",".join(METHODS), type=lambda s: s.split(","))
    parser.add_argument("--ram", default="12KB", help="tensor arena budget (default 12KB)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of every model and every trial (default 3)")
    parser.add_argument("--train-size", type=int, default=10000,
                        help="first N images of the protocol's 55,000 training images (default 10,000)")
    parser.add_argument("--trials", type=int, default=TRIALS, help=f"tuner trials (default {TRIALS})")
    parser.add_argument("--out", default=OUT, help="folder of the JSON files (default docs/results/tuner)")
    parser.add_argument("--code-version", help="recorded instead of the git version (when running a copy)")
    parser.add_argument("--report", nargs="?", const="-", metavar="FILE", help="markdown tables (stdout or FILE)")
    args = parser.parse_args(argv)
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        parser.error(f"--methods takes {list(METHODS)}. Received: {sorted(unknown)}.")
    if args.report:
        return emit(report(args.out), args.report)
    bench(args)


if __name__ == "__main__":
    sys.exit(main())
