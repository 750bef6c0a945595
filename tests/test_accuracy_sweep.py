"""benchmarks/accuracy_sweep.py and accuracy_report.py: statistics and verdicts, on hand-made result records."""
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
import accuracy_report as tables  # noqa: E402
import accuracy_sweep as sweep  # noqa: E402
from _common import read_results, t_interval  # noqa: E402


def record(arch, method, budget, seed, test_acc, log, **extra):
    """A result file's fields that the report reads; ``log``: (wall s, CPU s, val acc) per epoch."""
    log = [{"epoch": i + 1, "train_s": w, "cpu_s": c, "val_acc": v} for i, (w, c, v) in enumerate(log)]
    return {"name": sweep.Config(arch, method, budget, seed).name,
            "config": {"arch": arch, "method": method, "budget": budget, "seed": seed},
            "test_acc": test_acc, "val_acc": log[-1]["val_acc"], "log": log, "train_s": log[-1]["train_s"],
            "cpu_s": log[-1]["cpu_s"], "params": 100, "macs": 1000, "predicted_arena": 512, **extra}


def test_t_interval_matches_a_hand_computed_interval():
    mean, half = t_interval([1.0, 2.0, 3.0])  # sd 1, t(0.975, 2) = 4.303
    assert mean == 2.0
    assert half == pytest.approx(4.303 / 3 ** 0.5, rel=1e-3)
    assert t_interval([5.0])[1] != t_interval([5.0])[1]  # nan: no interval from one seed


def test_time_to_accuracy_reads_the_first_epoch_at_the_target():
    r = record("vgg", "FA", 50, 0, 0.9, [(10, 20, 0.80), (25, 40, 0.88), (40, 60, 0.89)])
    assert tables.time_to_accuracy(r, 0.88) == 25
    assert tables.time_to_accuracy(r, 0.88, "cpu_s") == 40
    assert tables.time_to_accuracy(r, 0.95) is None


def test_paired_differences_use_only_common_seeds():
    runs = {0: {"test_acc": 0.90}, 1: {"test_acc": 0.92}, 2: {"test_acc": 0.91}}
    other = {0: {"test_acc": 0.89}, 2: {"test_acc": 0.93}}
    assert tables.paired(runs, other) == pytest.approx([0.01, -0.02])


def test_time_verdict_when_from_scratch_reaches_the_target():
    dense = {0: record("vgg", "dense", 0, 0, 0.9, [(100, 100, 0.905)])}
    scratch = {0: record("vgg", "FA", 50, 0, 0.9, [(30, 50, 0.89), (60, 100, 0.90)])}
    tpf = {0: record("vgg", "tpf-FA", 50, 0, 0.9, [(200, 150, 0.90)])}  # dense seconds included
    text = tables.time_verdict(scratch, tpf, dense)
    # target 0.905 - 0.005 = 0.90: scratch at 60 s wall / 100 CPU-s, tpf at 200 / 150
    assert text.startswith("70% less wall time (met), 33% less CPU time (NOT met) (1 seed)")
    # both reach 0.90 (the lower final accuracy): the same epochs
    assert text.endswith("to the accuracy both reach (90.00% val): 70% less wall time (met), "
                         "33% less CPU time (NOT met) (1 seed)")


def test_time_verdict_counts_a_tpf_run_that_misses_the_target_whole():
    dense = {0: record("vgg", "dense", 0, 0, 0.9, [(100, 100, 0.905)])}
    scratch = {0: record("vgg", "FA", 50, 0, 0.9, [(20, 20, 0.88), (40, 40, 0.90)])}
    tpf = {0: record("vgg", "tpf-FA", 50, 0, 0.9, [(150, 150, 0.89)])}
    text = tables.time_verdict(scratch, tpf, dense)
    assert text.startswith("73% less wall time (met), 73% less CPU time (met)")  # 40 vs the whole 150
    assert "to the accuracy both reach (89.00% val): 73% less wall time" in text  # 0.89 first at 40 s


def test_time_verdict_fails_when_from_scratch_never_gets_there_but_still_compares():
    dense = {0: record("vgg", "dense", 0, 0, 0.9, [(100, 100, 0.91)])}
    scratch = {0: record("vgg", "FA", 50, 0, 0.9, [(20, 30, 0.88), (40, 60, 0.89)])}
    tpf = {0: record("vgg", "tpf-FA", 50, 0, 0.9, [(150, 120, 0.885)])}
    text = tables.time_verdict(scratch, tpf, dense)
    assert text.startswith("NOT met: from scratch never reached dense − 0.5 pp in 1 of 1 seeds")
    assert text.endswith("(88.50% val): 73% less wall time (met), 50% less CPU time (met) (1 seed)")
    assert tables.time_verdict({}, tpf, dense) == "no runs"


def test_report_pairs_seeds_against_dense_and_uniform_width(tmp_path):
    rows = []
    for seed, (d, fa, w) in enumerate([(0.90, 0.89, 0.88), (0.91, 0.90, 0.885), (0.92, 0.90, 0.89)]):
        rows += [record("vgg", "dense", 0, seed, d, [(10, 10, d)]),
                 record("vgg", "FA", 50, seed, fa, [(5, 5, fa)], int8_test_acc=fa - 0.001),
                 record("vgg", "width-macs", 50, seed, w, [(5, 5, w)])]
    for r in rows:
        (tmp_path / f"{r['name']}.json").write_text(json.dumps(r))
    text = tables.report(str(tmp_path))
    assert text.startswith("| method | budget | vgg |\n")  # the headline: methods x architectures
    assert "\n| dense | — | 91.00 ± 1.00 (3) |\n" in text
    assert "\n| FA | −50% | 89.67 ± 0.58 (3); +1.17 ± 0.72 vs width |\n" in text
    assert "\n| PA | −50% | not run |\n" in text
    fa_row = next(line for line in text.splitlines() if line.startswith("| vgg | FA |"))
    # FA − dense: -1, -1, -2 pp: mean -1.33, sd 0.577, half-width 4.303 * 0.577 / sqrt(3) = 1.43
    assert "| 89.67 ± 0.58 |" in fa_row
    assert "| -1.33 ± 1.43 |" in fa_row
    # FA − width: +1, +1.5, +1 pp: mean +1.17, sd 0.289, half-width 0.72
    assert "| +1.17 ± 0.72 |" in fa_row
    assert "| −50% ≥ uniform width | vgg | FA | +1.17 ± 0.72 pp: met (CI) |" in text
    assert "| −50% within 1.0 pp of dense | vgg | FA | -1.33 ± 1.43 pp: NOT met |" in text
    assert "| cost allocation ≥ paper rule | vgg | FA-cost − FA | no runs |" in text
    assert "| int8 within 0.5 pp of float | all | 3 models on TFLM | worst -0.10 pp: met |" in text


def test_report_tables_the_learning_rate_probes(tmp_path):
    (tmp_path / "probes").mkdir()
    used = sweep.FINETUNE_LR["vgg"]
    for arch, method, lr, val in [("vgg", "tpf-FA", 1e-5, 0.88), ("vgg", "tpf-FA", used, 0.90),
                                  ("mobilenetv2", "tpf-FA", 1e-5, 0.83), ("vgg", "FA", sweep.LR, 0.89)]:
        probe = {"config": {"arch": arch, "method": method, "budget": 50, "seed": 0, "lr": lr}, "val_acc": val}
        (tmp_path / "probes" / f"{arch}-{method}-{lr:g}.json").write_text(json.dumps(probe))
    text = tables.report(str(tmp_path))
    lrs = sorted({1e-5, used, sweep.LR})
    assert text.endswith("| val acc % per learning rate | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |\n"
                         "| --- | ---: | ---: | ---: |\n"
                         "| mobilenetv2 tpf-FA seed 0 | 83.00 | — | — |\n"
                         "| vgg FA seed 0 | — | 89.00 (used) | — |\n"
                         "| vgg tpf-FA seed 0 | 88.00 | — | 90.00 (used) |")
    assert tables.probe_table(str(tmp_path / "nothing")) == []


def test_the_fine_tune_learning_rate_is_the_best_of_the_committed_probes():
    runs = {}
    for r in read_results(os.path.join(os.path.dirname(sweep.__file__), "..", "docs", "results", "probes")):
        if r["config"]["seed"] == 0 and r["config"]["method"] == "tpf-FA":
            runs.setdefault(r["config"]["arch"], {})[r["config"]["lr"]] = r["val_acc"]
    assert set(runs) == set(sweep.FINETUNE_LR)
    for arch, by_lr in runs.items():
        assert sweep.FINETUNE_LR[arch] == max(by_lr, key=by_lr.get), arch


def test_a_model_trained_at_another_learning_rate_is_trained_again(tmp_path, monkeypatch):
    import keras

    config = sweep.Config("vgg", "tpf-FA", 50, 0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.save(tmp_path / f"{config.name}.keras")
    (tmp_path / f"{config.name}.train.json").write_text(json.dumps({"config": {"lr": 3e-4, "epochs": 1}}))
    fresh = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    monkeypatch.setattr(sweep, "build", lambda *a: (fresh, {"teacher": model}))
    monkeypatch.setattr(sweep, "train", lambda *a, **k: [{"train_s": 1.0, "cpu_s": 1.0, "val_acc": 0.5}])
    out = tmp_path / "out"
    out.mkdir()
    (out / "vgg-dense-0-seed0.json").write_text(json.dumps({"train_s": 10.0, "cpu_s": 20.0}))
    args = type("Args", (), {"models": str(tmp_path), "out": str(out), "epochs": 3})
    data = ((np.zeros((4, 2)), None), (np.zeros((2, 2)), None), (np.zeros((2, 2)), None))
    trained, record = sweep.trained(config, data, args, budgets=None)
    assert trained is fresh and record["config"]["lr"] == sweep.FINETUNE_LR["vgg"]
    assert record["train_s"] == 11.0  # the dense run's seconds counted
    again, _ = sweep.trained(config, data, args, budgets=None)  # now cached at the right learning rate
    assert again.layers[-1].units == 2


def test_the_adaptive_bn_verdict_needs_an_interval_above_width_on_two_architectures():
    def runs(accs):
        return {seed: {"test_acc": acc} for seed, acc in enumerate(accs)}

    groups = {("vgg", "FA-abn", 50): runs([0.90, 0.91, 0.92]), ("vgg", "width-macs", 50): runs([0.89, 0.90, 0.91]),
              ("resnet", "PA-abn", 50): runs([0.90, 0.91, 0.92]),
              ("resnet", "width-params", 50): runs([0.895, 0.90, 0.925])}  # +0.5, +1, -0.5 pp: a tie
    assert tables.abn_verdict(groups).endswith("| 1 of 2 run (vgg FA): NOT met |")
    groups["resnet", "width-params", 50] = runs([0.89, 0.905, 0.91])  # +1, +0.5, +1 pp
    assert tables.abn_verdict(groups).endswith("| 2 of 2 run (vgg FA, resnet PA): met |")


def test_a_probe_run_at_the_sweeps_learning_rate_is_not_trained_again(tmp_path, monkeypatch):
    import keras

    config = sweep.Config("vgg", "dense", 0, 0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    data = ((np.zeros((4, 2)), None), (np.zeros((2, 2)), None), (np.zeros((2, 2)), None))
    log = [{"train_s": 1.0, "cpu_s": 1.0, "val_acc": 0.5}]
    sweep.keep_trained(str(tmp_path / "lr0.003"), model,
                       sweep.training_record(config, data, {"epochs": 10, "lr": 3e-3}, log))
    monkeypatch.setattr(sweep, "build", lambda *a: pytest.fail("trained again"))
    args = type("Args", (), {"models": str(tmp_path), "out": str(tmp_path), "epochs": 10, "lr": 3e-3})
    again, record = sweep.trained(config, data, args, budgets=None)
    assert again.layers[-1].units == 3 and record["config"]["lr"] == 3e-3 and record["config"]["epochs"] == 10
    args.lr = 1e-3  # another rate: not that run
    monkeypatch.setattr(sweep, "build", lambda *a: (_ for _ in ()).throw(RuntimeError("builds")))
    with pytest.raises(RuntimeError, match="builds"):
        sweep.trained(config, data, args, budgets=None)
