"""The user's model and files are never modified; pruned models are plain Keras models."""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import pytest

import tflm_export
from keras_cprune import (ConstantRatio, analyze, apply_plan, estimate_arena, prune, prune_during_training,
                          prune_to_budget, strip, tradeoff)
from keras_cprune.training.callbacks import ComplexityLogger, ExportOnTrainEnd, FilterPruningStep
from keras_cprune.cli import main as cli_main
from models import ARCHITECTURES, randomize
from planning import pruned_and_plan


def _hashes(arrays) -> list:
    return [hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() for a in arrays]


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def snapshot(model) -> dict:
    """Everything a public function could change on a (compiled) model."""
    compiled = model.get_compile_config()
    return {
        "config": _json(model.get_config()),
        "names": [layer.name for layer in model.layers],
        "weights": _hashes(model.get_weights()),
        "trainable": [layer.trainable for layer in model.layers],
        "compiled": model.compiled,
        "optimizer": (type(model.optimizer).__name__, _json(model.optimizer.get_config())),
        "optimizer_variables": _hashes(v.numpy() for v in model.optimizer.variables),
        "loss": _json(model.loss),
        "metrics": _json([compiled["metrics"], compiled["weighted_metrics"]]),
    }


@pytest.fixture
def user_model():
    """A compiled model with frozen layers and an optimizer state as if it had been trained."""
    model = ARCHITECTURES["inverted_residual"](keras)
    randomize(model, seed=5)
    model.get_layer("stem").trainable = False
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(6)
    for variable in model.optimizer.variables:
        variable.assign(rng.uniform(0, 1e-3, tuple(variable.shape)).astype(variable.dtype))
    return model


RECOMPILES = {
    "optimizer": lambda m: m.compile(optimizer=keras.optimizers.Adam(0.5), loss="mse", metrics=["mae"]),
    "loss": lambda m: m.compile(optimizer=m.optimizer, loss="mae", metrics=["mae"]),
    "metrics": lambda m: m.compile(optimizer=m.optimizer, loss="mse", metrics=["mse"]),
    "optimizer_variables": lambda m: m.optimizer.variables[-1].assign(m.optimizer.variables[-1] + 1.0),
}


@pytest.mark.parametrize("part", RECOMPILES)
def test_snapshot_sees_compiled_state_changes(user_model, part):
    before = snapshot(user_model)
    RECOMPILES[part](user_model)
    assert snapshot(user_model)[part] != before[part]


def _data(model):
    return np.random.default_rng(0).uniform(0, 1, (8,) + tuple(model.inputs[0].shape[1:])).astype("float32")


def _run_hooks(callback, model, logs) -> None:
    """One epoch of one batch of ``callback``'s hooks, called directly on ``model``, without fit."""
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    callback.on_train_batch_begin(0)
    callback.on_train_batch_end(0)
    callback.on_epoch_end(0, logs)
    callback.on_train_end()


PUBLIC_CALLS = {
    "analyze": lambda m: analyze(m),
    "estimate_arena": lambda m: estimate_arena(m),
    "tradeoff": lambda m: tradeoff(m, ratios=(0.5,)),
    "prune_budget": lambda m: prune_to_budget(m, tflm_export.Budget(ram="7KB"), mode="MA", progress=None),
    "prune_during_training": lambda m: prune_during_training(m, "PA", schedule=ConstantRatio(0.5)),
    "strip": lambda m: strip(m),
    "convert": lambda m: tflm_export.convert(m, _data(m)),
    "export": lambda m: tflm_export.export(m, _data(m), tempfile.mkdtemp() + "/fw", latency_runs=1),
    "verify": lambda m: tflm_export.verify(tflm_export.convert(m, _data(m)), test_inputs=_data(m), keras_model=m,
                                           latency_runs=1),
    "ExportOnTrainEnd": lambda m: _run_hooks(ExportOnTrainEnd(tempfile.mkdtemp() + "/fw", _data(m)), m,
                                             {"val_accuracy": 0.5}),
    "ComplexityLogger": lambda m: _run_hooks(ComplexityLogger(every_epoch=True, log_dir=tempfile.mkdtemp()), m, {}),
    # It zeroes the model it trains at its schedule's pruning steps (its job), and only then.
    "FilterPruningStep": lambda m: _run_hooks(FilterPruningStep("PA", ConstantRatio(0.5, begin_step=2)), m, {}),
    "prune_PA": lambda m: prune(m, "PA", 0.5),
    "prune_FA_random": lambda m: prune(m, "FA", 0.7, importance="random", rule="all"),
    "prune_MA_reinit": lambda m: prune(m, "MA", 0.3, reinitialize=True, round_to=4),
    "apply_plan": lambda m: apply_plan(m, pruned_and_plan(m, "PA", 0.5)[1]),
}


@pytest.mark.parametrize("call", PUBLIC_CALLS)
def test_public_functions_leave_the_model_unchanged(user_model, call):
    before = snapshot(user_model)
    PUBLIC_CALLS[call](user_model)
    assert snapshot(user_model) == before


def test_cli_leaves_the_model_file_unchanged(tmp_path, user_model):
    path = str(tmp_path / "user.keras")
    user_model.save(path)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert cli_main(["prune", path, "-o", str(tmp_path / "out.keras"), "--mode", "MA"]) == 0
    assert cli_main(["prune", path, "-o", path]) == 2  # refuses to overwrite the input: an error
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == digest


RELOAD = """
import sys, numpy as np, keras
assert "keras_cprune" not in sys.modules
model = keras.saving.load_model(sys.argv[1], compile=False)
x = np.load(sys.argv[2])
np.save(sys.argv[3], model.predict(x, verbose=0))
assert "keras_cprune" not in sys.modules
"""


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_pruned_model_reloads_without_keras_cprune(tmp_path, user_model, suffix):
    pruned = prune(user_model, "MA", 0.5)
    path, x_path, y_path = (str(tmp_path / n) for n in ("pruned" + suffix, "x.npy", "y.npy"))
    pruned.save(path)
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
    np.save(x_path, x)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", RELOAD, path, x_path, y_path], capture_output=True, text=True,
                            cwd=str(tmp_path), env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(y_path), pruned.predict(x, verbose=0))
