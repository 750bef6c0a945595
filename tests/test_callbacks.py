"""ComplexityLogger: History and TensorBoard values equal analyze() and hand-counted numbers."""
import glob

import keras
import numpy as np
import pytest

import tensorflow as tf

from keras_cprune import analyze
from keras_cprune.arena import estimate_arena
from keras_cprune.callbacks import ComplexityLogger
from keras_cprune.training import ConstantRatio, prune_during_training
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
    arena = estimate_arena(model).bytes  # at train begin (a zero Dense bias is dropped by the converter)
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
    arena = estimate_arena(model).bytes
    fit(model, [logger], epochs=3)
    found = scalars(tmp_path)
    assert found.pop("complexity/tflm_arena_bytes")[0] == (0, float(arena))
    assert found == {f"complexity/{name}": [(s, float(value)) for s in steps] for name, value in HAND.items()}


def test_logged_values_follow_the_model_being_fit():
    model = residual(keras)
    masked, step = prune_during_training(model, schedule=ConstantRatio(0.5), rule="all")
    logger = ComplexityLogger()
    arena = estimate_arena(masked).bytes
    history = fit(masked, [step, logger], epochs=1)
    report = analyze(masked)  # masking keeps the architecture: the logged model is the dense one
    assert logger.values == {"params": report.params, "macs": report.macs,
                             "peak_act_bytes_int8": report.peak_act_bytes_int8,
                             "tflm_arena_bytes": arena}
    assert history.history["params"] == [masked.count_params()] and report.macs == 8 * 16 * 16 * 9 * (3 + 4 * 8) + 40


def test_export_on_best_epochs_and_over_budget_warning(tmp_path):
    import json
    import os

    from keras_cprune.callbacks import ExportOnTrainEnd
    from tflm_export import Budget

    model = tiny()
    x = np.random.default_rng(0).uniform(0, 1, (32, 8, 8, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("int32")
    export = ExportOnTrainEnd(str(tmp_path / "fw"), x[:8], budget=Budget(ram="1KB"), monitor="loss")
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.warns(RuntimeWarning, match="does not fit the budget: ram"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[export])
    report = json.load(open(tmp_path / "fw" / "report.json"))
    assert report["arena_bytes"] == export.report.arena_bytes and report["fits"] is False
    assert export.exported_epoch is not None and os.path.exists(tmp_path / "fw" / "model_data.cc")


def test_export_strict_raises_and_plain_export_at_train_end(tmp_path):
    from keras_cprune.callbacks import ExportOnTrainEnd
    from keras_cprune.errors import BudgetError
    from tflm_export import Budget

    x = np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 1)).astype("float32")
    y = np.zeros(16, "int32")
    model = tiny()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    fitting = ExportOnTrainEnd(str(tmp_path / "ok"), x, budget=Budget(ram="64KB"), save_best_only=False)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[fitting])
    assert fitting.report.fits and fitting.exported_epoch is None
    strict = ExportOnTrainEnd(str(tmp_path / "strict"), x, budget=Budget(ram="1KB"), save_best_only=False, strict=True)
    with pytest.raises(BudgetError, match="does not fit"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[strict])
