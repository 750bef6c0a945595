"""MLPerf Tiny end to end: the four reference architectures, unpruned, pruned and fitted to boards.

For each model of `keras_cprune.zoo.MLPERF_TINY` (resnet8, ds_cnn, mobilenet_v1_vww,
fc_autoencoder; freshly built, seed ``--seed``):

* unpruned, and pruned by PA, FA and MA at ``--ratio`` (0.5): ``keras_cprune.prune(model, mode, 0.5)``;
* pruned to each board's budget (``--boards``, default nano33ble, stm32f746, rp2040):
  ``keras_cprune.plan_to_budget(model, tflm_export.board_budget(board), mode="MA")`` then ``apply_plan``.
  Where the unpruned model already fits, the search returns it unpruned (the row says so and
  repeats the unpruned figures); where the budget cannot be met, the row gives the `BudgetError`'s
  smallest reachable arena, flash and MACs.

Each model is measured: params and MACs (`keras_cprune.analyze`), flash (bytes of the int8
flatbuffer from `tflm_export.convert`), the predicted arena
(``keras_cprune.estimate_arena(model, assume_trained=True).bytes``) beside the arena measured on
the TFLM runtime and the median host latency per invoke (`tflm_export.verify`). Before
conversion a copy of the model goes through `keras_cprune.graph.clone.as_trained` (an all-zero Dense
bias, which the converter would drop, is set to 1e-3 as training leaves it), so the measurement is
of the model the prediction describes. Calibration: ``--calib`` (32) uniform [0, 1) samples from
``numpy.random.default_rng(seed)``, the same data the budget search measures with.

The published MLPerf Tiny reference figures (github.com/mlcommons/tiny) are printed beside ours.
With ``--reference-dir`` holding the reference .tflite files (e.g. copied from that repository),
their arena and latency are measured on the same TFLM runtime too.

    python examples/mlperf_tiny.py [--models resnet8,ds_cnn] [--markdown table.md] [--reference-dir DIR]
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time

BOARDS = ("nano33ble", "stm32f746", "rp2040")
MODES = ("PA", "FA", "MA")
KB = 1024
REPO = "github.com/mlcommons/tiny"

# Published reference figures, all from github.com/mlcommons/tiny (master, commit 1afd2c9):
# the int8 flatbuffer each benchmark ships, and the kTensorArenaSize its reference submission
# (TFLM + Mbed on the NUCLEO-L4R5ZI) allocates. The latter is the arena the firmware reserves,
# not a measured minimum; no minimal arena is published in that repository.
REFERENCE = {
    "resnet8": dict(
        tflite="benchmark/training/image_classification/trained_models/pretrainedResnet_quant.tflite",
        tflite_bytes=98_496,
        arena_source="benchmark/reference_submissions/image_classification/submitter_implemented.cpp",
        arena_bytes=100 * KB),
    "ds_cnn": dict(
        tflite="benchmark/training/keyword_spotting/trained_models/kws_ref_model.tflite",
        tflite_bytes=53_936,
        arena_source="benchmark/reference_submissions/keyword_spotting/submitter_implemented.cpp",
        arena_bytes=200 * KB),
    "mobilenet_v1_vww": dict(
        tflite="benchmark/training/visual_wake_words/trained_models/vww_96_int8.tflite",
        tflite_bytes=333_288,
        arena_source="benchmark/reference_submissions/person_detection/submitter_implemented.cpp",
        arena_bytes=200 * KB),
    "fc_autoencoder": dict(
        tflite="benchmark/training/anomaly_detection/trained_models/ad01_int8.tflite",
        tflite_bytes=276_976,
        arena_source="benchmark/reference_submissions/anomaly_detection/submitter_implemented.cpp",
        arena_bytes=10 * KB),
}


def machine() -> str:
    import keras
    import tensorflow as tf

    try:
        from importlib.metadata import version

        micro = version("tflite-micro")
    except Exception:  # noqa: BLE001 - only for the label
        micro = "?"
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}, tflite-micro {micro}")


def copy_model(model):
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def measure(model, calib, latency_runs: int) -> dict:
    """params, MACs, predicted and measured arena, flash, latency of ``model``."""
    import keras_cprune
    import tflm_export
    from keras_cprune.graph.clone import as_trained

    report = keras_cprune.analyze(model)
    estimate = keras_cprune.estimate_arena(model, assume_trained=True)
    tflite = tflm_export.convert(as_trained(copy_model(model)), calib)
    run = tflm_export.verify(tflite, test_inputs=calib[:8], latency_runs=latency_runs)
    return dict(params=report.params, macs=report.macs, flash=len(tflite), predicted=estimate.bytes,
                exact=estimate.exact, approximated=tuple(estimate.approximated), measured=run.arena.bytes,
                latency_ms=run.latency_ms, tflite_max_abs_diff=run.tflite_max_abs_diff)


def fits(row: dict, boards) -> str:
    import tflm_export

    marks = []
    for name in boards:
        board = tflm_export.BOARDS[name]
        marks.append("yes" if row["measured"] <= board.sram and row["flash"] <= board.flash else "no")
    return " / ".join(marks)


REACH = re.compile(r"Smallest reachable at that floor: arena ([\d,]+) B, flash ([\d,]+) B, MACs ([\d,]+)")


def run_model(name: str, args, boards, log) -> list[dict]:
    import keras
    import numpy as np

    import keras_cprune
    import tflm_export
    from keras_cprune.errors import BudgetError
    from keras_cprune.zoo import MLPERF_TINY

    keras.utils.set_random_seed(args.seed)
    model = MLPERF_TINY[name]()
    shape = tuple(model.inputs[0].shape[1:])
    calib = np.random.default_rng(args.seed).uniform(0, 1, (args.calib,) + shape).astype("float32")
    rows = []

    def add(variant, m, note=""):
        start = time.perf_counter()
        row = dict(model=name, variant=variant, note=note, **measure(m, calib, args.latency_runs))
        if not row["exact"]:
            row["note"] = (note + "; " if note else "") + "prediction approximated: " + "; ".join(row["approximated"])
        rows.append(row)
        log(f"  {name} {variant}: params {row['params']:,}, MACs {row['macs']:,}, flash {row['flash']:,} B, "
            f"arena predicted {row['predicted']:,} / measured {row['measured']:,} B, "
            f"{row['latency_ms']:.3f} ms ({time.perf_counter() - start:.0f} s)")
        return row

    unpruned = add("unpruned", model)
    for mode in MODES:
        add(f"{mode} {args.ratio:g}", keras_cprune.prune(model, mode, args.ratio))
    for board in boards:
        budget = tflm_export.board_budget(board)
        spec = tflm_export.BOARDS[board]
        variant = f"MA → {board} ({spec.sram // KB} KB / {spec.flash // KB} KB)"
        start = time.perf_counter()
        try:
            plan = keras_cprune.plan_to_budget(model, budget, mode="MA", verbose=0, representative_data=calib)
            pruned = keras_cprune.apply_plan(model, plan)
        except BudgetError as exc:
            match = REACH.search(str(exc))
            reach = ("smallest reachable: arena {} B, flash {} B, MACs {}".format(*match.groups()) if match
                     else str(exc).splitlines()[0])
            rows.append(dict(model=name, variant=variant, note=f"BudgetError: {reach}", error=True))
            log(f"  {name} {variant}: BudgetError ({time.perf_counter() - start:.0f} s): {exc}")
            continue
        if plan.after.params == plan.before.params and pruned.count_params() == model.count_params():
            row = {**unpruned, "variant": variant, "note": "fits unpruned: the search returns it unpruned"}
            measured = plan.after.measured_arena and plan.after.measured_arena.bytes
            if measured is not None and measured != unpruned["measured"]:
                row["note"] += f" (its own measurement: arena {measured:,} B)"
            rows.append(row)
            log(f"  {name} {variant}: fits unpruned ({time.perf_counter() - start:.0f} s)")
        else:
            add(variant, pruned, note=f"removed {plan.ratio:.0%} of the prunable channels")
    return rows


def reference_rows(names, args, ours: dict, log) -> list[dict]:
    import tflm_export

    rows = []
    for name in names:
        ref = REFERENCE[name]
        row = dict(model=name, **ref, ours_flash=ours.get(name, {}).get("flash"),
                   ours_arena=ours.get(name, {}).get("measured"))
        path = os.path.join(args.reference_dir, os.path.basename(ref["tflite"])) if args.reference_dir else None
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                data = f.read()
            report = tflm_export.verify(data, latency_runs=args.latency_runs)
            row.update(ref_measured=report.arena.bytes, ref_latency_ms=report.latency_ms, ref_file_bytes=len(data))
            log(f"  reference {os.path.basename(path)}: {len(data):,} B, arena {report.arena.bytes:,} B, "
                f"{report.latency_ms:.3f} ms")
        rows.append(row)
    return rows


def n(value) -> str:
    return "—" if value is None else f"{value:,}"


def markdown(rows, refs, boards, header: str) -> str:
    lines = [header, "",
             "| model | variant | params | MACs | flash B | arena predicted B | arena measured B | predicted − measured"
             f" | host latency ms | fits {' / '.join(boards)} | note |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | {r['variant']} | | | | | | | | | {r['note']} |")
            continue
        diff = r["predicted"] - r["measured"]
        lines.append(f"| {r['model']} | {r['variant']} | {n(r['params'])} | {n(r['macs'])} | {n(r['flash'])} | "
                     f"{n(r['predicted'])} | {n(r['measured'])} | {diff:+,} | {r['latency_ms']:.3f} | "
                     f"{fits(r, boards)} | {r['note']} |")
    lines += ["", f"Published reference figures ({REPO}; the arena is the firmware's `kTensorArenaSize`, "
              "what the reference submission reserves, not a measured minimum):", "",
              "| model | reference int8 flatbuffer B (file) | ours unpruned flash B | reference kTensorArenaSize B "
              "(file) | reference flatbuffer, arena measured here B | ours unpruned arena measured B |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in refs:
        measured = n(r.get("ref_measured")) if "ref_measured" in r else "not measured (no --reference-dir)"
        lines.append(f"| {r['model']} | {r['tflite_bytes']:,} (`{r['tflite']}`) | {n(r['ours_flash'])} | "
                     f"{r['arena_bytes']:,} (`{r['arena_source']}`) | {measured} | {n(r['ours_arena'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(REFERENCE), help="comma-separated subset of " + ", ".join(REFERENCE))
    parser.add_argument("--boards", default=",".join(BOARDS), help="boards of tflm_export.BOARDS to fit")
    parser.add_argument("--ratio", type=float, default=0.5, help="PA/FA/MA pruning ratio (default 0.5)")
    parser.add_argument("--calib", type=int, default=32, help="uniform [0, 1) calibration samples")
    parser.add_argument("--latency-runs", type=int, default=20, help="invokes timed per model (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-dir", help="folder with the reference .tflite files to measure as well")
    parser.add_argument("--markdown", help="also write the tables to this file")
    args = parser.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    boards = [b.strip() for b in args.boards.split(",") if b.strip()]
    unknown = [m for m in names if m not in REFERENCE]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(REFERENCE)}")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tflm_export

    unknown = [b for b in boards if b not in tflm_export.BOARDS]
    if unknown:
        parser.error(f"unknown board(s) {', '.join(unknown)}; choose from {', '.join(tflm_export.BOARDS)}")

    def log(text):
        print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    rows = []
    for name in names:
        log(f"{name}:")
        rows += run_model(name, args, boards, log)
    ours = {r["model"]: r for r in rows if r["variant"] == "unpruned"}
    refs = reference_rows(names, args, ours, log)
    minutes = (time.perf_counter() - started) / 60
    command = " ".join(["python examples/mlperf_tiny.py"] + list(sys.argv[1:] if argv is None else argv))
    header = f"`{command}` (machine: {machine()}; {minutes:.1f} min)"
    text = markdown(rows, refs, boards, header)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
