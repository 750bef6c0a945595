"""convert and verify keep TensorFlow quiet (C++ log lines on fd 2, converter prints, retracing
warnings) and leave the user's logging settings and file descriptors as they were."""
import logging
import os
import subprocess
import sys

import keras
import numpy as np

import tflm_export
from tflm_export.convert import QUIET_LOGGERS, quiet_tensorflow


def tiny_dense():
    inputs = keras.Input((6,))
    x = keras.layers.Dense(4, activation="relu", name="fc")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name="tiny_dense")


def data(n=8):
    return np.random.default_rng(0).uniform(0, 1, (n, 6)).astype("float32")


SCRIPT = """
import os, sys
import numpy as np
sys.path.insert(0, "tests")
import tflm_export
from test_quiet_convert import data, tiny_dense
models = [tiny_dense() for _ in range(7)]  # a predict per new model: TensorFlow warns of retracing from the 5th
os.write(1, b"START\\n"); os.write(2, b"START\\n")  # TensorFlow's start-up lines (no GPU...) come before
tflite = tflm_export.convert(models[0], data())
for model in models[1:]:
    tflm_export.verify(tflite, test_inputs=data(4), keras_model=model, latency_runs=1)
print("ours", flush=True)
"""


def test_convert_and_verify_print_nothing():
    """In a fresh interpreter with every C++ log level on, as a user's script runs."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONPATH": root}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("START\n")[1] == "ours\n"
    assert done.stderr.split("START\n")[1] == ""


def test_logging_levels_and_streams_are_restored(capfd):
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    before = [logger.level for logger in loggers]
    loggers[0].setLevel(logging.INFO)  # a user who wants TensorFlow's info: restored, not reset
    try:
        tflite = tflm_export.convert(tiny_dense(), data())
        tflm_export.verify(tflite, test_inputs=data(4), keras_model=tiny_dense(), latency_runs=1)
        assert [logger.level for logger in loggers] == [logging.INFO] + before[1:]
    finally:
        loggers[0].setLevel(before[0])
    capfd.readouterr()
    print("ours")  # our own output still gets through, on Python's and the OS's streams
    os.write(2, b"fd2\n")
    assert capfd.readouterr() == ("ours\n", "fd2\n")


def test_output_inside_is_dropped_and_the_streams_come_back(capfd):
    stdout, stderr = sys.stdout, sys.stderr
    with quiet_tensorflow():
        print("inside")
        os.write(1, b"inside fd1\n")
        os.write(2, b"inside fd2\n")
        logging.getLogger("tensorflow").warning("retracing")
    assert sys.stdout is stdout and sys.stderr is stderr
    print("after")
    assert capfd.readouterr() == ("after\n", "")
