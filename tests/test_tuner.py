"""BoardFitTuner: KerasTuner search over pruned variants that fit a budget, resumed, exported on TFLM,
and run as KerasTuner's chief with two worker processes."""
import glob
import json
import os
import socket
import subprocess
import sys

import keras
import keras_tuner as kt
import numpy as np
import pytest

from keras_cprune import Budget, PruneConfig, SearchConfig, estimate_arena, prune_to_budget
from keras_cprune.errors import BudgetError, ModelError, NoTrialError, PruningError, TunerError
from keras_cprune.tuner.board_fit import RECORD, BoardFitTuner
from keras_cprune.tuner.hypermodel import USAGE, BoardFitHyperModel, predict_usage, scale_budget

# The 2-conv CNN below: 3,592 B predicted arena unpruned; pruning cannot go below 2,856 B (the
# input and the first conv's output stay alive). 3,300 B x (0.9 .. 1.0) is always reachable.
RAM = 3300


def tiny_cnn(compiled=True, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c0")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c1")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(x), name="tiny")
    if compiled:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def data(n=64):
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, 3, n)


def hp_with(hypermodel, **values):
    hp = kt.HyperParameters()
    hypermodel.space(hp)
    hp.values.update(values)
    return hp


def test_scale_budget_rounds_each_limit_down():
    scaled = scale_budget(Budget(ram=1000, flash=2001, macs=30), 0.75)
    assert (scaled.ram, scaled.flash, scaled.macs) == (750, 1500, 22)
    assert scale_budget(Budget(ram="64KB"), 0.5).get_config() == {"ram": 32768, "flash": None, "macs": None}


def test_config_and_prune_options_reach_every_trial():
    model = tiny_cnn()
    hypermodel = BoardFitHyperModel(model, Budget(ram=RAM), headroom=(0.9, 1.0), config=PruneConfig(min_keep=0.5),
                                    prune_options={"min_filters": 2, "search": SearchConfig(step=0.2)})
    assert hypermodel.config == PruneConfig(min_keep=0.5, min_filters=2) and hypermodel.search == SearchConfig(step=0.2)
    built = hypermodel.build(hp_with(hypermodel, mode="MA", allocation="cost", importance="l2", rule="all",
                                     budget_fraction=0.9, reinitialize=False))
    expected = prune_to_budget(model, scale_budget(Budget(ram=RAM), 0.9), mode="MA",
                               search=SearchConfig(step=0.2, verify=False),
                               config=PruneConfig(importance="l2", rule="all", min_keep=0.5, min_filters=2))
    assert [w.shape for w in built.get_weights()] == [w.shape for w in expected.get_weights()]
    assert built.count_params() < model.count_params()


@pytest.mark.parametrize("per_channel_dense", [True, False])
def test_predicted_usage_is_that_of_the_export_converted_as_asked(per_channel_dense):
    """Flash from the converter schedule's flatbuffer (within 1%), arena to TFLM's 16-byte step,
    for the export the tuner's budget is for (``prune_options={"per_channel_dense": False}``)."""
    from keras_cprune.graph.clone import as_trained
    from tflm_export import convert, find_min_arena
    from tflm_export.micro.planner import align

    model = as_trained(tiny_cnn(compiled=False))
    usage = predict_usage(model, per_channel_dense)
    tflite = convert(model, np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 1)), per_channel_dense=per_channel_dense)
    assert align(usage["arena_bytes"]) == find_min_arena(tflite).bytes
    assert abs(usage["flash_bytes"] - len(tflite)) <= 0.01 * len(tflite)


def test_build_prunes_to_the_scaled_budget_and_compiles_like_the_model():
    model = tiny_cnn()
    hypermodel = BoardFitHyperModel(model, Budget(ram=RAM), headroom=(0.9, 1.0))
    built = hypermodel.build(hp_with(hypermodel, mode="MA", budget_fraction=0.9, reinitialize=False))
    usage = predict_usage(built)
    assert usage["arena_bytes"] == estimate_arena(built, assume_trained=True).bytes <= 0.9 * RAM
    assert usage["params"] == built.count_params() < model.count_params()
    assert built.get_compile_config() == model.get_compile_config()
    assert set(USAGE) == set(usage)
    # the whole budget: the model fits unpruned, so weights are kept, or fresh with reinitialize
    big = BoardFitHyperModel(model, Budget(ram=4000), headroom=1.0)
    kept = big.build(hp_with(big, reinitialize=False))
    fresh = big.build(hp_with(big, reinitialize=True))
    assert kept.count_params() == fresh.count_params() == model.count_params()
    np.testing.assert_array_equal(kept.get_layer("c1").kernel.numpy(), model.get_layer("c1").kernel.numpy())
    assert not np.allclose(fresh.get_layer("c1").kernel.numpy(), model.get_layer("c1").kernel.numpy())


def test_unreachable_fraction_fails_at_construction_or_the_trial_before_training(tmp_path):
    # 0.8 x 3,300 = 2,640 B < the 2,856 B pruning can reach
    with pytest.raises(BudgetError, match=r"headroom=\(0.8, 1.0\).*2,640.*arena 2,856 B"):
        BoardFitTuner(tiny_cnn(), budget=Budget(ram=RAM), headroom=(0.8, 1.0), directory=str(tmp_path))
    tuner = BoardFitTuner(tiny_cnn(), budget=Budget(ram=RAM), headroom=(0.9, 1.0), max_trials=1,
                          directory=str(tmp_path), overwrite=True)
    hp = hp_with(tuner.hypermodel, budget_fraction=0.8)  # outside the space: as a trial would fail
    with pytest.raises(BudgetError, match="cannot be met"):
        tuner.hypermodel.build(hp)
    with pytest.raises(kt.errors.FailedTrialError, match="cannot be met"):
        tuner.run_trial(kt.engine.trial.Trial(hp, trial_id="x"), *data())


@pytest.mark.parametrize("kwargs,error,says", [
    ({}, BudgetError, "board="),
    ({"board": "nano33ble", "target": "cortex-m3/cmsis_nn"}, BudgetError, "Unknown target="),
    ({"budget": Budget(ram=RAM), "margin": -1}, BudgetError, "margin="),
    ({"board": "nano99"}, BudgetError, "Unknown board"),
    ({"budget": Budget(ram=2000)}, BudgetError, "cannot be met"),  # below what pruning can reach: at construction
    ({"budget": Budget(ram=RAM), "headroom": (0.0, 1.2)}, BudgetError, "headroom"),
    ({"budget": Budget(ram=RAM), "modes": ("PA", "XX")}, PruningError, "Unknown pruning mode 'XX'"),
    ({"budget": Budget(ram=RAM), "modes": ()}, TunerError, r"Expected `modes` to be a non-empty list of values\. "),
    ({"budget": Budget(ram=RAM), "importances": ("l3",)}, TunerError, r"among .*Received: importances=\('l3',\)"),
    ({"budget": Budget(ram=RAM), "prune_options": {"mode": "MA"}}, TunerError, r"may not set \['mode'\]"),
    ({"budget": Budget(ram=RAM), "headroom": (0.9, 1.0), "oracle": "grid"}, TunerError, "oracle='grid'"),
])
def test_bad_arguments_fail_at_construction(tmp_path, kwargs, error, says):
    with pytest.raises(error, match=says):
        BoardFitTuner(tiny_cnn(), directory=str(tmp_path), overwrite=True, **kwargs)


def test_results_before_a_search_raise_no_trial_error(tmp_path):
    tuner = BoardFitTuner(tiny_cnn(), budget=Budget(ram=RAM), headroom=(0.9, 1.0), directory=str(tmp_path))
    with pytest.raises(NoTrialError, match="No completed trial in .*run search\\(\\) first") as error:
        tuner.export_best(str(tmp_path / "best"), np.zeros((4, 8, 8, 1), "float32"))
    assert isinstance(error.value, RuntimeError) and not os.path.exists(tmp_path / "best")


def test_uncompiled_model_needs_compile_kwargs(tmp_path):
    options = dict(budget=Budget(ram=RAM), headroom=(0.9, 1.0), directory=str(tmp_path), overwrite=True)
    with pytest.raises(ModelError, match="compile_kwargs="):
        BoardFitTuner(tiny_cnn(compiled=False), **options)
    tuner = BoardFitTuner(tiny_cnn(compiled=False), **options,
                          compile_kwargs={"optimizer": keras.optimizers.SGD(0.01), "loss": "sparse_categorical_crossentropy",
                                          "metrics": ["accuracy"]})
    first, second = (tuner.hypermodel.build(hp_with(tuner.hypermodel)) for _ in range(2))
    assert isinstance(first.optimizer, keras.optimizers.SGD) and first.optimizer is not second.optimizer
    with pytest.raises(ModelError, match="Expected `model`"):
        BoardFitTuner(42, budget=Budget(ram=RAM), directory=str(tmp_path))


class CountOrInterrupt(keras.callbacks.Callback):
    """Counts trainings (class-wide: KerasTuner deep-copies callbacks) and interrupts the N-th one."""

    trainings = 0
    interrupt_at = None

    def on_train_begin(self, logs=None):
        CountOrInterrupt.trainings += 1
        if CountOrInterrupt.trainings == CountOrInterrupt.interrupt_at:
            raise KeyboardInterrupt


@pytest.mark.slow  # minutes of CPU: runs with --slow (in CI after the fast set)
def test_search_interrupted_resumes_then_exports_the_best_on_tflm(tmp_path, capsys):
    x, y = data()
    fit = dict(validation_data=(x[:16], y[:16]), epochs=1, batch_size=16, verbose=0, callbacks=[CountOrInterrupt()])
    options = dict(budget=Budget(ram=RAM), headroom=(0.9, 1.0), max_trials=3, seed=3, directory=str(tmp_path),
                   project_name="resume")
    CountOrInterrupt.trainings, CountOrInterrupt.interrupt_at = 0, 2
    with pytest.raises(KeyboardInterrupt):
        BoardFitTuner(tiny_cnn(), overwrite=True, **options).search(x, y, **fit)
    CountOrInterrupt.trainings, CountOrInterrupt.interrupt_at = 0, None
    tuner = BoardFitTuner(tiny_cnn(), overwrite=False, **options)
    tuner.search(x, y, **fit)
    assert CountOrInterrupt.trainings == 2  # the interrupted trial again and the last one; not the first
    assert sorted(t.status for t in tuner.oracle.trials.values()) == ["COMPLETED"] * 3
    assert "Reloading Tuner" in capsys.readouterr().out

    points = tuner.points()
    assert len(points) == 3 and points[0].score >= points[-1].score
    for point in points:
        record = json.load(open(os.path.join(tuner.get_trial_dir(point.trial_id), RECORD)))
        assert point.arena_bytes <= record["target"]["ram"] <= RAM and record["tuner_id"] == point.tuner_id == "tuner0"
        assert record["target"]["ram"] == int(RAM * point.values["budget_fraction"])
    tuner.results_summary(1)
    assert "Results summary" in capsys.readouterr().out
    best = tuner.get_best_models(1)[0]
    assert predict_usage(best)["arena_bytes"] == points[0].arena_bytes <= RAM

    exported = tuner.export_best(str(tmp_path / "best"), x[:16], test_inputs=x[:16], labels=y[:16])
    assert exported.fits and exported.trial_id == points[0].trial_id
    assert exported.report.arena.bytes <= RAM and os.path.isfile(tmp_path / "best" / "model_data.cc")
    assert "fits" in capsys.readouterr().out
    png = tuner.plot(str(tmp_path / "trials.png"))
    assert os.path.getsize(png) > 10_000


WORKER_SCRIPT = '''
import json, os, sys, time
import keras, numpy as np
from keras_cprune import Budget, PruneConfig, estimate_arena, prune_to_budget
from keras_cprune.tuner.board_fit import BoardFitTuner


class Barrier(keras.callbacks.Callback):
    """Trains only once both workers are up, so that neither can take every trial."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_train_begin(self, logs=None):
        deadline = time.time() + 60
        while len(os.listdir(self.folder)) < 2 and time.time() < deadline:
            time.sleep(0.2)


directory, model_path, barrier, result = sys.argv[1:5]
rng = np.random.default_rng(0)
x, y = rng.random((64, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 64)
tuner = BoardFitTuner(model_path, budget=Budget(ram=%d), headroom=(0.9, 1.0), max_trials=4, seed=0,
                      directory=directory, project_name="dist")
tuner_id = os.environ["KERASTUNER_TUNER_ID"]
if tuner_id != "chief":
    open(os.path.join(barrier, tuner_id), "w").close()
tuner.search(x, y, validation_data=(x[:16], y[:16]), epochs=1, batch_size=16, verbose=0,
             callbacks=[Barrier(barrier)])
if tuner_id == "chief":  # the search is over: all trials are in the chief's oracle
    best = tuner.get_best_models(1)[0]
    json.dump({"points": [p.to_dict() for p in tuner.points()],
               "best_arena": estimate_arena(best, assume_trained=True).bytes}, open(result, "w"))
''' % RAM


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # minutes of CPU: runs with --slow (in CI after the fast set)
def test_chief_and_two_workers_share_the_trials(tmp_path):
    model_path = str(tmp_path / "tiny.keras")
    tiny_cnn().save(model_path)
    script, barrier, result = tmp_path / "job.py", tmp_path / "barrier", tmp_path / "result.json"
    script.write_text(WORKER_SCRIPT)
    barrier.mkdir()
    env = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port()),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [sys.executable, str(script), str(tmp_path / "search"), model_path, str(barrier), str(result)]
    procs = {tid: subprocess.Popen(args, env={**env, "KERASTUNER_TUNER_ID": tid}, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
             for tid in ("chief", "tuner0", "tuner1")}
    try:
        outputs = {tid: p.communicate(timeout=240)[0] for tid, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    for tid, p in procs.items():
        assert p.returncode == 0, f"{tid} exited {p.returncode}:\n{outputs[tid][-3000:]}"

    records = [json.load(open(f)) for f in glob.glob(str(tmp_path / "search" / "dist" / "trial_*" / RECORD))]
    assert len(records) == 4 and {r["tuner_id"] for r in records} == {"tuner0", "tuner1"}
    summary = json.load(open(result))
    assert sorted(p["tuner_id"] for p in summary["points"]) == sorted(r["tuner_id"] for r in records)
    for point in summary["points"]:
        assert point["arena_bytes"] <= int(RAM * point["values"]["budget_fraction"])
    assert summary["best_arena"] == summary["points"][0]["arena_bytes"] <= RAM
