"""The public workflow on every installed Keras 3 backend other than TensorFlow (JAX, PyTorch), each
in its own interpreter (``KERAS_BACKEND`` is read at import): tests/backend_checks.py asserts the
equivalences and budgets there, and these tests compare its analysis and plan with TensorFlow's on
the same saved weights. Conversion of such models runs in a TensorFlow process
(`tflm_export.convert_subprocess`), tested here directly as well."""
import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tflm_export
from custom_layers import Shift, scaled_model
from keras_cprune import analyze, plan_pruning
from keras_cprune.errors import ConversionError
from models import inverted_residual, randomize
from tflm_export.convert_subprocess import convert_in_tensorflow_process

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(importlib.util.find_spec(name) is None,
                                                        reason=f"{name} is not installed (pip install {name})"))
            for name in ("jax", "torch")]
OPTIONS = {"io_dtype": "int8", "num_samples": 8, "per_channel_dense": True}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A small MobileNetV2-like model with random weights, saved, and TensorFlow's analysis and
    plan of it (``plan_pruning(model, "MA", 0.5, rule="all")``, as tests/backend_checks.py plans)."""
    model = inverted_residual(keras)
    randomize(model, seed=3)
    path = str(tmp_path_factory.mktemp("backends") / "model.keras")
    model.save(path)
    report = analyze(model)
    reference = {"analyze": {"params": report.params, "macs": report.macs,
                             "peak_act_bytes_int8": report.peak_act_bytes_int8}}
    if keras.backend.backend() == "tensorflow":
        reference["plan"] = plan_pruning(model, "MA", 0.5, rule="all").to_dict()
    return path, reference


def run_checks(backend: str, model_path: str, out_dir, *flags: str) -> dict:
    out = os.path.join(out_dir, f"{backend}.json")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([ROOT, HERE, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, os.path.join(HERE, "backend_checks.py"), model_path, out, *flags], env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    with open(out, encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("backend", BACKENDS)
def test_workflow_gives_tensorflows_results(backend, saved_model, tmp_path):
    """analyze, plan_pruning + apply_plan (equivalent to the masked original), plan_to_budget measured
    on TFLM, prune_during_training + fit + strip with ComplexityLogger, Distiller, tradeoff."""
    path, reference = saved_model
    results = run_checks(backend, path, tmp_path)
    assert results["backend"] == backend
    assert results["analyze"] == reference["analyze"] == {"params": 1500, "macs": 73968, "peak_act_bytes_int8": 3608}
    if "plan" not in reference:
        pytest.skip("the reference plan is TensorFlow's: run pytest with KERAS_BACKEND=tensorflow")
    assert results["plan"] == reference["plan"]
    assert results["budget"]["measured_arena"] <= results["budget"]["ram"]
    assert len(results["tradeoff"]["points"]) == 4


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_board_fit_tuner_trial(backend, saved_model, tmp_path):
    """The workflow again with one BoardFitTuner trial (30-40 s more) that fits its budget."""
    results = run_checks(backend, saved_model[0], tmp_path, "--tuner")
    assert results["tuner"]["arena_bytes"] <= results["tuner"]["ram"]


def test_conversion_process_loads_registered_and_given_custom_objects():
    x = np.random.default_rng(0).uniform(0, 1, (8, 4)).astype("float32")
    model = scaled_model(Shift(name="shift"))
    flatbuffer = convert_in_tensorflow_process(model, x, OPTIONS, custom_objects={"Shift": Shift})
    assert flatbuffer == tflm_export.convert(model, x)  # the same bytes as converted here


def test_conversion_process_errors_keep_their_type_and_name_the_cause():
    x = np.random.default_rng(0).uniform(0, 1, (8, 4)).astype("float32")
    with pytest.raises(ConversionError, match=r"Could not locate class 'Shift'.*custom_objects"):
        convert_in_tensorflow_process(scaled_model(Shift(name="shift")), x, OPTIONS)
    inputs = keras.Input((4,))
    erf = keras.Model(inputs, keras.layers.Lambda(lambda t: keras.ops.erf(t))(keras.layers.Dense(3)(inputs)))
    with pytest.raises(ConversionError, match=r"op.s. Erf have no int8 TFLite builtin kernel"):
        convert_in_tensorflow_process(erf, x, OPTIONS)


def test_conversion_process_names_custom_objects_it_cannot_import():
    local = type("Local", (Shift,), {"__module__": "__main__"})  # as if defined in a script
    keras.saving.get_custom_objects()["Local"] = local
    try:
        with pytest.raises(ConversionError, match=r"cannot be loaded there: Local \(__main__\.Local\)"):
            convert_in_tensorflow_process(scaled_model(local(name="local")), np.ones((2, 4), "float32"), OPTIONS)
    finally:
        del keras.saving.get_custom_objects()["Local"]


def test_conversion_process_fuses_an_lstm():
    from keras_cprune.zoo import kws_lstm

    model = kws_lstm(units=8)
    x = np.random.default_rng(0).uniform(-1, 1, (8, 49, 10)).astype("float32")
    flatbuffer = convert_in_tensorflow_process(model, x, OPTIONS)
    assert tflm_export.read_model(flatbuffer).op_counts["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 1
    assert flatbuffer == tflm_export.convert(model, x)
