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
from keras_cprune import ConstantRatio, analyze, apply_plan, estimate_arena, prune, prune_during_training, strip, tradeoff
from keras_cprune.cli import main as cli_main
from models import ARCHITECTURES, randomize


def snapshot(model) -> dict:
    """Everything a public function could change on a model."""
    return {
        "config": json.dumps(model.get_config(), sort_keys=True, default=str),
        "names": [layer.name for layer in model.layers],
        "weights": [hashlib.sha256(np.ascontiguousarray(w).tobytes()).hexdigest() for w in model.get_weights()],
        "trainable": [layer.trainable for layer in model.layers],
        "compiled": (model.compiled, type(getattr(model, "optimizer", None)).__name__, model.compiled_loss is not None
                     if hasattr(model, "compiled_loss") else None),
    }


@pytest.fixture
def user_model():
    model = ARCHITECTURES["inverted_residual"](keras)
    randomize(model, seed=5)
    model.get_layer("stem").trainable = False
    model.compile(optimizer="adam", loss="mse")
    return model


def _data(model):
    return np.random.default_rng(0).uniform(0, 1, (8,) + tuple(model.inputs[0].shape[1:])).astype("float32")


PUBLIC_CALLS = {
    "analyze": lambda m: analyze(m),
    "estimate_arena": lambda m: estimate_arena(m),
    "tradeoff": lambda m: tradeoff(m, ratios=(0.5,)),
    "prune_budget": lambda m: prune(m, "MA", budget=tflm_export.Budget(ram="7KB"), progress=None),
    "prune_during_training": lambda m: prune_during_training(m, "PA", schedule=ConstantRatio(0.5)),
    "strip": lambda m: strip(m),
    "convert": lambda m: tflm_export.convert(m, _data(m)),
    "export": lambda m: tflm_export.export(m, _data(m), tempfile.mkdtemp() + "/fw", latency_runs=1),
    "prune_PA": lambda m: prune(m, "PA", 0.5),
    "prune_FA_random": lambda m: prune(m, "FA", 0.7, importance="random", rule="all"),
    "prune_MA_reinit": lambda m: prune(m, "MA", 0.3, reinitialize=True, round_to=4),
    "apply_plan": lambda m: apply_plan(m, prune(m, "PA", 0.5, return_plan=True)[1]),
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
    assert cli_main(["prune", path, "-o", path]) == 1  # refuses to overwrite the input
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
