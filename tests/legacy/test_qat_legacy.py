"""tf_keras: gradual pruning in fit, strip, QAT (tfmot), int8 conversion and a run on the TFLite Micro runtime."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tflm_export
from keras_cprune import analyze
from keras_cprune.training.callbacks import ComplexityLogger
from keras_cprune.errors import ModelError
from keras_cprune.training.qat import quantize_aware
from keras_cprune import PolynomialDecay, prune_during_training, strip
from models import randomize, vgg

# TFLM can abort the whole process on a bad model: run it in its own interpreter.
TFLM = """
import sys
import numpy as np
from tflite_micro import runtime
model, inputs, outputs = sys.argv[1:]
interpreter = runtime.Interpreter.from_bytes(open(model, "rb").read(), arena_size=64 * 1024)
results = []
for sample in np.load(inputs):
    interpreter.set_input(sample[None], 0)
    interpreter.invoke()
    results.append(interpreter.get_output(0)[0])
np.save(outputs, np.stack(results))
"""


def run_tflm(tflite: bytes, x: np.ndarray, tmp_path) -> np.ndarray:
    (tmp_path / "model.tflite").write_bytes(tflite)
    np.save(tmp_path / "x.npy", x)
    args = [str(tmp_path / name) for name in ("model.tflite", "x.npy", "y.npy")]
    result = subprocess.run([sys.executable, "-c", TFLM, *args], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(tmp_path / "y.npy")


def test_gradual_pruning_qat_int8_on_tflm(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, size=(64, 16, 16, 1)).astype("float32"), rng.integers(0, 10, 64)
    model = vgg(keras, input_shape=(16, 16, 1), widths=(8, 16))
    randomize(model)
    masked, step = prune_during_training(model, "MA", schedule=PolynomialDecay(0.0, 0.5, 0, 4, frequency=2),
                                         rule="all")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    masked.compile(keras.optimizers.Adam(1e-3), loss)
    history = masked.fit(x, y, batch_size=16, epochs=2, callbacks=[step, ComplexityLogger()], verbose=0)
    assert history.history["params"] == [analyze(masked).params] * 2 and step.plan.ratio == 0.5
    pruned = strip(masked)
    widths = [pruned.get_layer(name).filters for name in ("conv0", "conv1")]
    assert widths == [4, 8] and pruned.count_params() == step.plan.after.params
    np.testing.assert_allclose(pruned.predict(x, verbose=0), masked.predict(x, verbose=0), rtol=1e-5, atol=1e-5)

    qat = quantize_aware(pruned)
    qat.compile(keras.optimizers.Adam(1e-4), loss)
    qat.fit(x, y, batch_size=16, epochs=1, verbose=0)
    tflite = tflm_export.convert(qat, x[:16])
    report = tflm_export.verify(tflite, test_inputs=x[:8], keras_model=qat, latency_runs=1)
    assert report.arena.bytes > 0 and report.tflite_max_abs_diff <= 1 and report.samples == 8
    details = tf.lite.Interpreter(model_content=tflite).get_input_details()[0]
    scale, zero = details["quantization"]
    assert details["dtype"] == np.int8
    xq = np.clip(np.round(x[:8] / scale + zero), -128, 127).astype(np.int8)
    out = run_tflm(tflite, xq, tmp_path)
    assert out.dtype == np.int8 and out.shape == (8, 10)
    out_details = tf.lite.Interpreter(model_content=tflite).get_output_details()[0]
    out_scale, out_zero = out_details["quantization"]
    logits = (out.astype("float32") - out_zero) * out_scale
    expected = qat.predict(x[:8], verbose=0)
    assert np.abs(logits - expected).max() <= 3 * out_scale  # the fake-quantized model, to int8 rounding


def test_quantize_aware_reports_unsupported_layers():
    class Double(keras.layers.Layer):
        def call(self, inputs):
            return 2.0 * inputs

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(Double()(inputs)), name="custom")
    with pytest.raises(ModelError, match="cannot quantize model 'custom'.*Double.*QuantizeConfig"):
        quantize_aware(model)
