"""benchmarks/convergence.py (accuracy at convergence) and benchmarks/adaptive_bn.py, on hand-made records and
small models."""
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
import accuracy_sweep as sweep  # noqa: E402
from _common import read_results  # noqa: E402
import adaptive_bn  # noqa: E402
import convergence  # noqa: E402
from test_accuracy_sweep import record  # noqa: E402

import keras  # noqa: E402

from keras_cprune import Budget, analyze, zoo  # noqa: E402
from keras_cprune.pruning.context import PruneContext  # noqa: E402
from keras_cprune.pruning.importance import unit_scores  # noqa: E402
from keras_cprune.pruning.rebuild import rebuild  # noqa: E402


def methods(arch, epochs):
    return [(c.method, c.budget) for c in convergence.configs(arch, [0], epochs)]


def test_the_longest_schedule_adds_equal_compute_tpf_and_on_mobilenetv2_the_joint_model():
    short = methods("vgg", 10)
    assert short == [("dense", 0), ("PA", 50), ("FA", 50), ("MA-cost", 50), ("width-params", 50),
                     ("width-macs", 50), ("width-arena", 50)]
    assert methods("vgg", 30) == short + [("PA-B", 50), ("FA-B", 50), ("MA-cost-B", 50), ("tpf-FA", 50)]
    longest = methods("mobilenetv2", 20)
    assert ("PA-B", 70) in longest and ("width-params", 70) in longest and longest[-1] == ("joint", 70)
    assert ("joint", 70) not in methods("mobilenetv2", 10)
    with pytest.raises(SystemExit, match="one of"):
        convergence.configs("vgg", [0], 20)


def test_equal_compute_trains_the_dense_models_macs():
    model = zoo.vgg(width=0.5)
    dense, pruned = analyze(zoo.vgg()).macs, analyze(model).macs
    config = sweep.Config("vgg", "FA-B", 50, 0)
    assert sweep.epochs_of(config, 10, model) == round(10 * dense / pruned) > 10
    assert sweep.protocol(config, 10, 3e-3) == {"schedule_epochs": 10, "lr": 3e-3}  # its epochs follow the model
    assert sweep.protocol(sweep.Config("vgg", "FA", 50, 0), 10, 3e-3) == {"epochs": 10, "lr": 3e-3}
    assert sweep.protocol(sweep.Config("vgg", "tpf-FA", 50, 0), 30, 3e-3) == {"epochs": 10,
                                                                               "lr": sweep.FINETUNE_LR["vgg"]}


def test_the_scratch_learning_rate_is_the_best_of_the_committed_probes_at_the_longest_schedule():
    for arch, lr in convergence.SCRATCH_LR.items():
        folder = os.path.join(convergence.folder(convergence.SCHEDULES[arch][-1]), "probes")
        by_lr = {}
        for r in read_results(folder):
            if r["config"]["arch"] == arch and r["config"]["method"] in ("dense", "FA"):
                assert r["config"]["epochs"] == convergence.SCHEDULES[arch][-1]
                by_lr.setdefault(r["config"]["lr"], []).append(r["val_acc"])
        assert len(by_lr) >= 2 and all(len(v) == 2 for v in by_lr.values()), (arch, by_lr)  # dense and FA per rate
        assert lr == max(by_lr, key=lambda k: np.mean(by_lr[k])), arch


def test_the_joint_models_record_is_read_back_under_its_configuration(tmp_path, monkeypatch):
    """The joint model's Budget limits are recorded beside its configuration's budget (70), not over it."""
    config = sweep.Config("mobilenetv2", "joint", 70, 0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, name="logits")])
    monkeypatch.setattr(sweep, "joint_model", lambda c, b: (model, Budget(flash=900, macs=500, ram=400)))
    _, details = sweep.build(config, budgets=None, models_dir=str(tmp_path))
    assert details["limits"] == {"flash": 900, "macs": 500, "ram": 400}
    data = ((np.zeros((4, 2)), None), (np.zeros((2, 2)), None), (np.zeros((2, 2)), None))
    log = [{"train_s": 1.0, "cpu_s": 1.0, "val_acc": 0.5}]
    record = {**sweep.training_record(config, data, {**details, "epochs": 20, "lr": 3e-3}, log), "test_acc": 0.9}
    monkeypatch.setattr(convergence, "RESULTS", str(tmp_path))
    (tmp_path / "e20").mkdir()
    sweep.write_json(str(tmp_path / "e20" / (config.name + ".json")), record)
    assert convergence.groups()["mobilenetv2", "joint", 70] == {20: {0: record}}
    with pytest.raises(ValueError, match="budget"):
        sweep.training_record(config, data, {"budget": {"ram": 400}}, log)


def test_report_gives_the_gap_per_schedule_and_the_longest_schedules_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(convergence, "RESULTS", str(tmp_path))
    rows = {3: [], 30: []}
    for seed, d, fa, w in [(0, 0.90, 0.88, 0.87), (1, 0.91, 0.89, 0.88), (2, 0.92, 0.89, 0.88)]:
        for epochs, shift in ((3, 0.0), (30, 0.01)):  # longer: every model +1 pp, FA +2 pp
            rows[epochs] += [record("vgg", "dense", 0, seed, d + shift, [(10, 10, d + shift)]),
                             record("vgg", "FA", 50, seed, fa + 2 * shift, [(5, 5, fa), (9, 9, d + 2 * shift)]),
                             record("vgg", "width-macs", 50, seed, w + shift, [(5, 5, w + shift)])]
        rows[30] += [record("vgg", "FA-B", 50, seed, d + 0.01, [(5, 5, d), (20, 20, d + 0.01)],
                            config_epochs=66),
                     record("vgg", "tpf-FA", 50, seed, fa + 0.02, [(15, 30, fa + 0.02)], config_epochs=10)]
    for epochs, records in rows.items():
        (tmp_path / f"e{epochs}").mkdir()
        for r in records:
            r["config"]["epochs"] = r.pop("config_epochs", epochs)
            (tmp_path / f"e{epochs}" / f"{r['name']}.json").write_text(json.dumps(r))
    text = convergence.report()
    assert "| vgg: Δ vs dense, pp (95% CI) | budget | 3 epochs | 10 epochs | 30 epochs |" in text
    assert "| FA | −50% | -2.33 ± 1.43 | — | -1.33 ± 1.43 |" in text  # 3 epochs: -2, -2, -3 pp; 30: -1, -1, -2
    assert "| FA | −50% | +1.00 ± 0.00 | — | +2.00 ± 0.00 |" in text  # vs width
    fa_b = next(line for line in text.splitlines() if line.startswith("| FA-B |"))
    assert "| 66 |" in fa_b and "| +0.00 ± 0.00 |" in fa_b  # equal compute: level with dense
    assert "| +1.33 ± 1.43 |" in fa_b  # and above FA at 30 epochs: +1, +1, +2 pp
    assert "| tpf-FA | −50% | 30 + 10 | 90.67 ± 0.58 (3) | -1.33 ± 1.43 | +0.00 ± 0.00 |" in text  # = FA at 30
    assert "- FA: CPU s to dense − 0.5 pp (val) 9, reached in 3 of 3 seeds" in text
    readme = "\n".join(convergence.summary(convergence.groups()))
    assert ("vgg at equal compute (Scratch-B, pp): FA-B −50% (3 seeds) +0.00 ± 0.00 vs dense, +1.33 ± 1.43 vs FA "
            "at 30 epochs.") in readme
    timing = next(line for line in readme.splitlines() if line.startswith("vgg time to accuracy at 30 epochs"))
    assert "70% less CPU time (met) (3 seeds)" in timing  # FA at dense - 0.5 pp after 9 CPU s; tpf never: all 30
    assert timing.endswith("from scratch vs train → prune → fine-tune: +0.00 ± 0.00 pp.")


def test_a_random_allocation_meets_the_budget_and_keeps_every_layers_floor():
    keras.utils.set_random_seed(0)
    context = PruneContext.of(zoo.vgg())
    rng = np.random.default_rng(0)
    scores = {g.id: unit_scores(context.deps, g, "l1", rng) for g in context.deps.groups if g.prunable}
    limit = context.report.macs // 2
    allocations = [adaptive_bn.draw(context, "macs", limit, rng, scores) for _ in range(3)]
    widths = sweep.channels(context.model)
    for removed in allocations:
        assert context.price(removed).macs <= limit
        kept = sweep.channels(rebuild(context.model, context.deps, removed, weights="none"))
        assert kept != widths and all(kept[name] >= 0.25 * widths[name] for name in widths)
    assert len({frozenset(r) for r in allocations}) == 3  # each draw another allocation
    assert adaptive_bn.draw(context, "macs", 10, rng, scores) is None  # below the floor: none


def test_adaptive_bn_sets_the_moving_statistics_to_the_mean_of_the_batch_statistics():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.BatchNormalization(momentum=0.99)(inputs))
    images = np.random.default_rng(0).normal(2.0, 3.0, (40, 3)).astype("float32")
    adaptive_bn.recalibrate(model, images, batch=10)
    norm = model.layers[-1]
    batches = images.reshape(4, 10, 3)
    np.testing.assert_allclose(np.asarray(norm.moving_mean), batches.mean(1).mean(0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(norm.moving_variance), batches.var(1).mean(0), rtol=1e-4)
    assert norm.momentum == 0.99  # restored


def test_the_readme_summary_says_whether_the_joint_model_loses_accuracy(tmp_path, monkeypatch):
    monkeypatch.setattr(convergence, "RESULTS", str(tmp_path))
    (tmp_path / "e20").mkdir()
    for seed, d, j in [(0, 0.90, 0.893), (1, 0.91, 0.902), (2, 0.92, 0.911)]:  # -0.7, -0.8, -0.9 pp
        for r in (record("mobilenetv2", "dense", 0, seed, d, [(10, 10, d)], params=1000, macs=1000,
                         predicted_arena=1000),
                  record("mobilenetv2", "joint", 70, seed, j, [(5, 5, j)], params=300, macs=200, predicted_arena=490),
                  record("mobilenetv2", "width-arena", 50, seed, j - 0.002 * (seed + 1), [(5, 5, j)], params=260,
                         macs=240, predicted_arena=495)):  # the joint model +0.2, +0.4, +0.6 pp above it
            r["config"]["epochs"] = 20
            (tmp_path / "e20" / f"{r['name']}.json").write_text(json.dumps(r))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{convergence.README_MARKERS[0]}\nold\n{convergence.README_MARKERS[1]}\nrest\n")
    convergence.update_readme(str(readme))
    text = readme.read_text()
    assert text.startswith("intro\n<!-- convergence:start -->\n| arch | method |") and text.endswith("-->\nrest\n")
    assert ("mobilenetv2 joint (70% fewer parameters, 80% fewer MACs, 51% fewer arena bytes) at 20 epochs, 3 seeds: "
            "-0.80 ± 0.25 pp vs dense: \"no accuracy loss\" (≥ −0.5 pp) misses by 0.30 pp; vs the uniform width of "
            "the same arena (width-arena −50%, keeping 26%, 24%, 50% of the parameters, MACs and arena): +0.40 ± 0.50 "
            "pp.") in text
    joint = next(line for line in convergence.report().splitlines() if line.startswith("| joint |"))
    assert "| -0.80 ± 0.25 | — | +0.40 ± 0.50 | 30%, 20%, 49% |" in joint


def test_the_plot_gives_each_row_one_colour_in_every_panel_and_the_joint_model_a_star(tmp_path, monkeypatch):
    import matplotlib.axes

    monkeypatch.setattr(convergence, "RESULTS", str(tmp_path / "results"))
    rows = [("vgg", "dense", 0, 30), ("vgg", "PA", 50, 30), ("vgg", "width-arena", 50, 30),
            ("mobilenetv2", "dense", 0, 20), ("mobilenetv2", "PA", 70, 20), ("mobilenetv2", "width-arena", 50, 20),
            ("mobilenetv2", "joint", 70, 20)]
    for arch, method, budget, epochs in rows:
        folder = tmp_path / "results" / f"e{epochs}"
        folder.mkdir(parents=True, exist_ok=True)
        for seed in (0, 1):
            r = record(arch, method, budget, seed, 0.9 - 0.01 * seed - 0.001 * budget, [(5, 5, 0.9)])
            (folder / f"{r['name']}.json").write_text(json.dumps(r))
    drawn = []
    errorbar = matplotlib.axes.Axes.errorbar

    def recorded(ax, *args, **kwargs):  # (panel, label, colour, marker) of every row drawn
        drawn.append((ax.get_subplotspec().colspan.start, kwargs["label"], kwargs["color"], kwargs["marker"]))
        return errorbar(ax, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", recorded)
    assert os.path.getsize(convergence.plot(str(tmp_path / "plot.png"))) > 0
    panels = {label: (panel, colour, marker) for panel, label, colour, marker in drawn}
    assert [p[0] for p in drawn] == [0, 0, 1, 1, 1]  # dense is the reference line, never a row
    arena = [(panel, colour) for panel, label, colour, _ in drawn if label == "width-arena −50%"]
    assert [p for p, _ in arena] == [0, 1] and arena[0][1] == arena[1][1]  # the same colour in both panels
    assert len({colour for _, _, colour, _ in drawn}) == 4  # PA −50%, width-arena, PA −70%, joint
    assert panels["joint: ≤ 30% params, ≤ 50% MACs and arena"][2] == "*" and panels["PA −70%"][2] == "o"
