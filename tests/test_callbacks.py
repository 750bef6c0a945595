"""ComplexityLogger: History and TensorBoard values equal analyze() and hand-counted numbers.
ExportOnTrainEnd: one export at train end by default, best-epoch choice with save_best_only, a missing
monitor that warns once and still exports, budget warnings and strict failures that keep the last export."""
import glob
import hashlib
import json
import os
import warnings

import keras
import numpy as np
import pytest

import tensorflow as tf

from keras_cprune import analyze
from keras_cprune.deploy.arena import estimate_arena
from keras_cprune.training.callbacks import ComplexityLogger, ExportOnTrainEnd, monitor_mode
from keras_cprune.errors import BudgetError, PruningError
from keras_cprune import ConstantRatio, prune_during_training
from models import residual

# conv: 3*3*1*4 + 4 = 40 params, 8*8*4 * 9 = 2304 MACs; dense: 256*2 + 2 = 514 params, 512 MACs.
# Peak int8 activations: Flatten's input and output, 256 + 256 bytes.
HAND = {"params": 554, "macs": 2816, "peak_act_bytes_int8": 512}


def tiny():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="dense")(x))


def fit(model, callbacks, epochs=2):
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(8,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    y = np.zeros((8,) + tuple(model.outputs[0].shape[1:]), "float32")
    return model.fit(x, y, batch_size=4, epochs=epochs, callbacks=callbacks, verbose=0)


def scalars(log_dir) -> dict:
    """``{tag: [(step, value), ...]}`` from the TensorBoard event files under ``log_dir``."""
    found = {}
    for path in sorted(glob.glob(f"{log_dir}/events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                found.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return found


def test_history_holds_analyze_values():
    model = tiny()
    arena = estimate_arena(model, assume_trained=True).bytes  # as deployed once trained, as plans predict
    history = fit(model, [ComplexityLogger()])
    report = analyze(model)
    assert (report.params, report.macs, report.peak_act_bytes_int8) == tuple(HAND.values())
    assert arena > HAND["peak_act_bytes_int8"]  # activations plus TFLM's persistent structs
    for name, value in {**HAND, "tflm_arena_bytes": arena}.items():
        assert history.history[name] == [value, value]
    assert len(history.history["loss"]) == 2


@pytest.mark.parametrize("every_epoch, steps", [(False, [0]), (True, [0, 1, 2])])
def test_tensorboard_scalars(tmp_path, every_epoch, steps):
    logger = ComplexityLogger(every_epoch=every_epoch, log_dir=str(tmp_path))
    model = tiny()
    arena = estimate_arena(model, assume_trained=True).bytes
    fit(model, [logger], epochs=3)
    found = scalars(tmp_path)
    assert found.pop("complexity/tflm_arena_bytes")[0] == (0, float(arena))
    assert found == {f"complexity/{name}": [(s, float(value)) for s in steps] for name, value in HAND.items()}


def test_tensorboard_callback_gets_the_scalars_in_its_train_folder(tmp_path):
    board = keras.callbacks.TensorBoard(log_dir=str(tmp_path))  # not fit here: it needs the tensorboard package
    model = tiny()
    arena = estimate_arena(model, assume_trained=True).bytes
    fit(model, [ComplexityLogger(tensorboard=board)], epochs=2)
    assert os.listdir(tmp_path) == ["train"]  # where TensorBoard writes its epoch scalars
    found = scalars(tmp_path / "train")
    assert found.pop("complexity/tflm_arena_bytes") == [(0, float(arena))]
    assert found == {f"complexity/{name}": [(0, float(value))] for name, value in HAND.items()}


@pytest.mark.parametrize("kwargs, match", [
    (dict(tensorboard="logs"), "Expected `tensorboard` to be a keras.callbacks.TensorBoard"),
    (dict(tensorboard=keras.callbacks.TensorBoard("a"), log_dir="b"), "Pass `log_dir` or `tensorboard`"),
])
def test_complexity_logger_bad_arguments(kwargs, match):
    with pytest.raises(PruningError, match=match):
        ComplexityLogger(**kwargs)


def test_logged_values_follow_the_model_being_fit():
    model = residual(keras)
    masked, step = prune_during_training(model, schedule=ConstantRatio(0.5), rule="all")
    logger = ComplexityLogger()
    arena = estimate_arena(masked, assume_trained=True).bytes
    history = fit(masked, [step, logger], epochs=1)
    report = analyze(masked)  # masking keeps the architecture: the logged model is the dense one
    assert logger.values == {"params": report.params, "macs": report.macs,
                             "peak_act_bytes_int8": report.peak_act_bytes_int8,
                             "tflm_arena_bytes": arena}
    assert history.history["params"] == [masked.count_params()] and report.macs == 8 * 16 * 16 * 9 * (3 + 4 * 8) + 40


class Script(keras.callbacks.Callback):
    """Puts ``values[epoch]`` into the epoch logs as ``name``, before the callbacks after it see them."""

    def __init__(self, name, values):
        super().__init__()
        self.name, self.values = name, values

    def on_epoch_end(self, epoch, logs=None):
        logs[self.name] = self.values[epoch]


def digests(folder) -> dict:
    return {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(folder))}


def export_data(n):
    x = np.random.default_rng(0).uniform(0, 1, (n, 8, 8, 1)).astype("float32")
    return x, (x.mean(axis=(1, 2, 3)) > 0.5).astype("int32")


def compiled_tiny():
    model = tiny()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize("monitor, mode, expected", [
    ("val_mae", "auto", "min"), ("mean_squared_error", "auto", "min"), ("val_loss", "auto", "min"),
    ("out_loss", "auto", "min"), ("val_accuracy", "auto", "max"), ("auc", "auto", "max"),
    ("val_precision", "auto", "max"), ("recall", "auto", "max"), ("f1_score", "auto", "max"),
    ("val_loss", "max", "max"), ("val_accuracy", "min", "min"),
])
def test_monitor_mode_by_name(monitor, mode, expected):
    assert monitor_mode(monitor, mode) == expected


def test_monitor_mode_follows_a_keras3_metrics_declared_direction():
    model = tiny()
    model.compile("sgd", "mse", metrics=[keras.metrics.R2Score(), keras.metrics.MeanSquaredError(name="squared_acc")])
    model.evaluate(np.zeros((2, 8, 8, 1), "float32"), np.zeros((2, 2), "float32"), verbose=0)  # builds the metrics
    assert monitor_mode("val_r2_score", "auto", model) == "max"
    assert monitor_mode("squared_acc", "auto", model) == "min"  # declared "down" beats the name


def test_export_mode_is_validated():
    with pytest.raises(PruningError, match=r"Expected `mode` to be one of \('auto', 'min', 'max'\).*mode='best'"):
        ExportOnTrainEnd("fw", None, mode="best")


@pytest.mark.parametrize("mode, exported", [("auto", [0, 2]), ("min", [0, 2]), ("max", [0, 1])])
def test_best_epochs_follow_mode(monkeypatch, mode, exported):
    export = ExportOnTrainEnd("fw", None, monitor="val_mae", mode=mode, save_best_only=True)
    done = []
    monkeypatch.setattr(export, "_export", done.append)
    for epoch, value in enumerate([0.5, 0.7, 0.3]):
        export.on_epoch_end(epoch, {"val_mae": value})
    assert done == exported


def test_export_on_best_epochs_and_over_budget_warning(tmp_path):
    from tflm_export import Budget

    x, y = export_data(32)
    export = ExportOnTrainEnd(str(tmp_path / "fw"), x[:8], budget=Budget(ram="1KB"), monitor="val_mae",
                              save_best_only=True)
    with pytest.warns(RuntimeWarning, match="does not fit the budget: ram"):
        compiled_tiny().fit(x, y, epochs=2, verbose=0, callbacks=[Script("val_mae", [0.5, 0.9]), export])
    report = json.load(open(tmp_path / "fw" / "report.json"))
    assert report["arena"]["bytes"] == export.report.arena.bytes and report["fits"] is False
    assert export.exported_epoch == 0 and export.best == 0.5  # epoch 1's larger error is not exported
    assert os.path.exists(tmp_path / "fw" / "model_data.cc")


def test_export_strict_keeps_the_previous_export_and_plain_export_at_train_end(tmp_path):
    from tflm_export import Budget

    x, y = export_data(16)
    model = compiled_tiny()
    fitting = ExportOnTrainEnd(str(tmp_path / "fw"), x, budget=Budget(ram="64KB"), save_best_only=False)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[fitting])
    assert fitting.report.fits and fitting.exported_epoch == 0
    before = digests(tmp_path / "fw")
    strict = ExportOnTrainEnd(str(tmp_path / "fw"), x, budget=Budget(ram="1KB"), save_best_only=False, strict=True)
    with pytest.raises(BudgetError, match="does not fit the budget: ram.* keeps the previous export"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[strict])
    assert digests(tmp_path / "fw") == before and strict.report is None
    assert os.listdir(tmp_path) == ["fw"]  # no staging folder left behind


def test_export_quantizes_dense_weights_per_tensor_when_asked(tmp_path):
    from tflm_export.micro.flatbuffer import graph_from_tflite

    x, y = export_data(16)
    model = compiled_tiny()
    export = ExportOnTrainEnd(str(tmp_path / "fw"), x, per_channel_dense=False)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[export])
    graph = graph_from_tflite(open(tmp_path / "fw" / "model.tflite", "rb").read())
    dense = [op for op in graph.ops if op.op == "FULLY_CONNECTED"]
    assert dense and all(graph.tensors[op.inputs[1]].quant_channels == 1 for op in dense)


def fake_fit(export, logs_per_epoch) -> list:
    """The hooks ``fit`` calls, with these epoch logs; the epochs ``_export`` was called with."""
    done = []
    export._export = done.append
    export.on_train_begin()
    for epoch, logs in enumerate(logs_per_epoch):
        export.on_epoch_end(epoch, dict(logs))
    export.on_train_end()
    return done


def test_default_exports_once_when_training_ends():
    export = ExportOnTrainEnd("fw", None)
    assert fake_fit(export, [{"loss": 0.5, "val_accuracy": 0.5}, {"loss": 0.4, "val_accuracy": 0.9}]) == [1]


@pytest.mark.parametrize("logs, exported", [
    ([{"loss": 0.5}, {"loss": 0.4}, {"loss": 0.3}], [2]),  # never validated: the last epoch, at train end
    ([{"loss": 0.5}, {"loss": 0.4, "val_mae": 0.3}, {"loss": 0.3}], [1]),  # validation_freq=2
])
def test_missing_monitor_warns_once_and_still_exports(logs, exported):
    export = ExportOnTrainEnd("fw", None, monitor="val_mae", save_best_only=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fake_fit(export, logs) == exported
    assert [str(w.message)[:73] for w in caught] == [
        "ExportOnTrainEnd monitors 'val_mae', which is not in the logs of epoch 0 "]
    assert "(available: loss)" in str(caught[0].message) and caught[0].category is RuntimeWarning


def test_fit_without_validation_data_completes_and_exports(tmp_path):
    x, y = export_data(16)
    export = ExportOnTrainEnd(str(tmp_path / "fw"), x[:8], monitor="val_accuracy", save_best_only=True)
    model = compiled_tiny()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, epochs=2, verbose=0, callbacks=[export])
    ours = [str(w.message) for w in caught if "ExportOnTrainEnd" in str(w.message)]
    assert len(ours) == 1 and "'val_accuracy'" in ours[0] and "(available: accuracy, loss)" in ours[0]
    assert len(history.history["loss"]) == 2 and export.exported_epoch == 1 and export.best is None
    assert json.load(open(tmp_path / "fw" / "report.json"))["arena"]["bytes"] == export.report.arena.bytes
