"""The bad-input catalogue (docs/ERRORS.md): one row per case, each checking the exception type
and that the message names the culprit and the fix."""
import tempfile

import keras
import pytest

from keras_cprune import Budget, analyze, apply_plan, estimate_arena, plan_pruning, prune, prune_to_budget
import numpy as np

import tflm_export
from keras_cprune.errors import (BudgetError, ConversionError, ModelError, ModelFileError, OutputPathError, PlanError,
                                 PruningError, SubclassedModelError, TFLMRuntimeError, UnbuiltModelError)
from keras_cprune.io import load_model, save_model
from keras_cprune.pruning.plan import PruningPlan
from keras_cprune.zoo import vgg
from planning import pruned_and_plan


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def subclassed():
    model = Subclassed()
    model(keras.ops.ones((1, 3)))
    return model


def dense_only():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3)(inputs))


def file_with(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def small():
    return vgg(input_shape=(8, 8, 1), widths=(2,))


def erf_model():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Lambda(lambda t: keras.ops.erf(t))(keras.layers.Dense(3)(inputs)))


def softmax_untrained():
    inputs = keras.Input((8,))
    logits = keras.layers.Dense(4, kernel_initializer="zeros", bias_initializer="zeros")(inputs)
    return tflm_export.convert(keras.Model(inputs, keras.layers.Softmax()(logits)), np.random.rand(10, 8))


def sources_into(folder):
    tflite = tflm_export.convert(small(), np.random.rand(4, 8, 8, 1))
    return tflm_export.write_sources(tflite, str(folder), tflm_export.verify(tflite, latency_runs=1))


CASES = {
    "not a model": (lambda t: analyze([1, 2]), ModelError, ["Received: model=list", "keras.Model"]),
    "subclassed model": (lambda t: prune(subclassed()), SubclassedModelError, ["Subclassed", "Functional"]),
    "unbuilt model": (lambda t: analyze(keras.Sequential([keras.layers.Dense(2)])), UnbuiltModelError,
                      ["has no input shape", "keras.Input"]),
    "ratio out of range": (lambda t: prune(vgg(), "PA", 1.5), PruningError, ["ratio=1.5", "[0, 1)"]),
    "unknown mode": (lambda t: prune(vgg(), "XA"), PruningError, ["'XA'", "PA", "MA"]),
    "export option not a bool": (lambda t: plan_pruning(vgg(), "PA", 0.5, per_channel_dense="no"), PruningError,
                                 ["per_channel_dense='no'", "True", "False"]),
    "export option not a bool (estimate)": (lambda t: estimate_arena(vgg(), per_channel_dense=1), PruningError,
                                            ["per_channel_dense=1"]),
    "zero filters": (lambda t: prune(vgg(), "PA", 0.5, min_filters=0), PruningError, ["min_filters=0", ">= 1"]),
    "nothing prunable": (lambda t: prune(dense_only()), PruningError, ["Nothing in model", "pinned"]),
    "empty budget": (lambda t: prune_to_budget(vgg(), Budget(), mode="MA"), BudgetError, ["sets no limit", "ram="]),
    "budget not a Budget": (lambda t: prune_to_budget(vgg(), {"ram": 100}, mode="MA"), BudgetError,
                            ["`budget`", "Received: budget={'ram': 100}", "Budget(ram=..., flash=..., macs=...)"]),
    "impossible budget": (lambda t: prune_to_budget(vgg(), Budget(ram=100), mode="MA", progress=None), BudgetError,
                          ["Smallest reachable", "> 100 B", "Raise the budget"]),
    "plan for another model": (lambda t: apply_plan(dense_only(), pruned_and_plan(vgg())[1]), PlanError,
                               ["'conv", "architecture it was made for"]),
    "not a plan": (lambda t: PruningPlan.from_json('{"mode": "PA"}'), PlanError, ["PruningPlan.to_json"]),
    "missing model file": (lambda t: load_model(str(t / "nope.keras")), ModelFileError, ["nope.keras", "does not exist"]),
    "corrupt .keras": (lambda t: load_model(file_with(t, "bad.keras", b"junk")), ModelFileError,
                       ["bad.keras", "model.save"]),
    "corrupt .h5": (lambda t: load_model(file_with(t, "bad.h5", b"\x89HDF\r\n\x1a\njunk")), ModelFileError,
                    ["bad.h5", "Could not load"]),
    "output exists": (lambda t: save_model(vgg(), file_with(t, "out.keras", b"keep me")), OutputPathError,
                      ["out.keras", "exists already"]),
    "output folder missing": (lambda t: save_model(vgg(), str(t / "no" / "m.keras")), OutputPathError,
                              ["does not exist", "Create it"]),
    "representative data of wrong shape": (lambda t: tflm_export.convert(small(), np.zeros((2, 9, 9, 1))),
                                           ConversionError, ["(9, 9, 1)", "expects (8, 8, 1)"]),
    "representative data with NaN": (lambda t: tflm_export.convert(small(), np.full((2, 8, 8, 1), np.nan)),
                                     ConversionError, ["NaN", "clean the data"]),
    "empty representative data": (lambda t: tflm_export.convert(small(), np.zeros((0, 8, 8, 1))), ConversionError,
                                  ["empty", "typical inputs"]),
    "float-only op for int8": (lambda t: tflm_export.convert(erf_model(), np.random.rand(4, 4)), ConversionError,
                               ["Erf", "int8"]),
    "corrupt .tflite": (lambda t: tflm_export.verify(b"\x00" * 64), ModelFileError, ["64 bytes", ".tflite"]),
    "TFLM abort": (lambda t: tflm_export.verify(softmax_untrained()), TFLMRuntimeError,
                   ["signal 6", "softmax"]),
    "output folder exists": (lambda t: sources_into(t), OutputPathError, ["exists already", "overwrite=True"]),
    "unknown board": (lambda t: tflm_export.board_budget("uno"), BudgetError, ["'uno'", "nano33ble"]),
    "malformed size": (lambda t: tflm_export.Budget(ram="lots"), BudgetError, ["ram='lots'", "'64KB'"]),
    "negative budget": (lambda t: tflm_export.Budget(flash=-1), BudgetError, ["flash=-1", "positive size"]),
    "representative data of wrong dtype": (lambda t: tflm_export.convert(small(), np.full((2, 8, 8, 1), "a")),
                                           ConversionError, ["real numbers", "<U1"]),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, tmp_path):
    call, error, fragments = CASES[case]
    with pytest.raises(error) as info:
        call(tmp_path)
    for fragment in fragments:
        assert fragment in str(info.value), f"{case}: {fragment!r} not in {info.value}"


def test_existing_output_is_left_untouched(tmp_path):
    path = file_with(tmp_path, "out.keras", b"keep me")
    with pytest.raises(OutputPathError):
        save_model(vgg(), path)
    assert open(path, "rb").read() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.keras"]  # no temp file left


def test_disk_full_while_writing_leaves_nothing(tmp_path):
    model = vgg()

    def full_disk(path):  # writes part of the file, then the disk is full
        open(path, "wb").write(b"partial")
        raise OSError(28, "No space left on device")

    model.save = full_disk
    with pytest.raises(OutputPathError, match="No space left.*Nothing was written"):
        save_model(model, str(tmp_path / "m.keras"))
    assert list(tmp_path.iterdir()) == []


def test_permission_denied_names_the_folder_and_leaves_nothing(tmp_path, monkeypatch):
    def denied(*args, **kwargs):  # as in a read-only folder (tests run as root, so chmod would not do)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(OutputPathError, match="Cannot write in folder .*Permission denied.*permissions"):
        save_model(vgg(), str(tmp_path / "m.keras"))
    assert list(tmp_path.iterdir()) == []


def test_lambda_custom_and_shared_layers_are_pinned_not_a_crash():
    class Scale(keras.layers.Layer):
        def call(self, x):
            return 2.0 * x

    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(8, 3, name="a")(inputs)
    x = keras.layers.Lambda(lambda t: t * 2.0, name="lambda")(a)
    b = keras.layers.Conv2D(8, 3, name="b")(x)
    c = Scale(name="custom")(keras.layers.Conv2D(8, 1, name="c")(b))
    shared = keras.layers.Conv2D(8, 1, name="shared")
    d = keras.layers.Add()([shared(c), shared(c)])
    e = keras.layers.Conv2D(6, 1, name="e")(d)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(e)))
    pruned = prune(model, "PA", 0.5, rule="all")
    widths = {name: pruned.get_layer(name).filters for name in ("a", "b", "c", "shared", "e")}
    assert widths == {"a": 8, "b": 4, "c": 8, "shared": 8, "e": 3}
    x = np.random.default_rng(0).random((2, 8, 8, 3)).astype("float32")
    assert pruned.predict(x, verbose=0).shape == (2, 2)
