"""tflm_export on the real TFLM runtime: conversion, minimal arena, agreement, sources, budgets."""
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import tflm_export
from keras_cprune import estimate_arena
from keras_cprune.errors import BudgetError, ConversionError, OutputPathError, TFLMRuntimeError
from keras_cprune.zoo import vgg
from models import concat_branches, inverted_residual, randomize, residual
from tflm_export.runtime import run_model


def gap_head(keras):
    inputs = keras.Input((12, 12, 2))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name="gap_head")


def dense_head(keras):
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Flatten(name="flatten")(keras.layers.Conv2D(4, 3, name="conv")(inputs))
    x = keras.layers.Dense(8, activation="relu", name="fc")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name="dense_head")


MODELS = {"conv_chain": lambda k: vgg(k, input_shape=(16, 16, 1), widths=(4, 8)), "residual": residual,
          "depthwise": inverted_residual, "concat": concat_branches, "gap_head": gap_head, "dense_head": dense_head}


def data_for(model, n=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n,) + tuple(model.inputs[0].shape[1:])).astype("float32")


@pytest.fixture(scope="module")
def converted():
    """Each test model, randomized, with its int8 flatbuffer."""
    result = {}
    for name, build in MODELS.items():
        model = build(keras)
        randomize(model, seed=1)
        result[name] = (model, tflm_export.convert(model, data_for(model)))
    return result


@pytest.mark.parametrize("name", MODELS)
def test_verify_measures_arena_that_works_and_minus_16_fails(converted, name):
    model, tflite = converted[name]
    x = data_for(model, 8, seed=3)
    report = tflm_export.verify(tflite, test_inputs=x, keras_model=model, latency_runs=3)
    assert report.arena_bytes % 16 == 0 and report.arena_probes <= 12
    inputs = np.zeros((1,) + tuple(model.inputs[0].shape[1:]), np.int8)
    assert run_model(tflite, report.arena_bytes, inputs, 1).outputs.shape[0] == 1
    with pytest.raises(TFLMRuntimeError):
        run_model(tflite, report.arena_bytes - 16, inputs, 1)
    # the Keras-side predictor (no conversion) equals the flatbuffer-side planner, whose byte-exact
    # minimum rounded up to the search's 16-byte step is what TFLM measured
    assert estimate_arena(model).bytes == report.predicted_arena_bytes
    assert report.arena_bytes == -(-report.predicted_arena_bytes // 16) * 16
    assert report.tflite_vs_tflm_max_diff is not None and report.tflite_vs_tflm_max_diff <= 1
    assert report.keras_top1_agreement is not None and report.latency_ms > 0
    assert "Arena allocation total" in report.allocations
    assert sum(report.ops.values()) >= 2 and report.flatbuffer_bytes == len(tflite)


def test_export_writes_sources_that_compile(tmp_path, converted):
    model, _ = converted["residual"]
    out = str(tmp_path / "fw")
    report = tflm_export.export(model, data_for(model), out, board="nano33ble", latency_runs=2)
    files = sorted(os.listdir(out))
    assert files == ["model.tflite", "model_data.cc", "model_data.h", "model_settings.h", "op_resolver.h",
                     "report.json"]
    data = open(os.path.join(out, "model_data.cc")).read()
    tflite = open(os.path.join(out, "model.tflite"), "rb").read()
    assert "alignas(16) const unsigned char g_model[]" in data and f"g_model_len = {len(tflite)};" in data
    settings = open(os.path.join(out, "model_settings.h")).read()
    assert f"kMeasuredArenaSize = {report.arena_bytes};" in settings
    assert f"kTensorArenaSize = {tflm_export.sources.arena_with_margin(report.arena_bytes)};" in settings
    assert "kInputDims[kInputRank] = {1, 16, 16, 3};" in settings
    resolver = open(os.path.join(out, "op_resolver.h")).read()
    assert "MicroMutableOpResolver<kNumOps>" in resolver and f"kNumOps = {len(report.ops)};" in resolver
    for op in ("AddConv2D", "AddAdd", "AddMean", "AddFullyConnected"):
        assert f"resolver.{op}()" in resolver
    assert "AddSoftmax" not in resolver  # exactly the model's ops
    assert json.load(open(os.path.join(out, "report.json")))["arena_bytes"] == report.arena_bytes
    if shutil.which("arm-none-eabi-g++") is None:
        pytest.skip("arm-none-eabi-g++ is not installed (apt-get install gcc-arm-none-eabi); CI has it")
    assert report.compile["compiled"], report.compile
    assert len(tflite) <= report.flash_bytes <= len(tflite) + 64  # the array, aligned, and its length
    assert report.fits and report.resources["ram"].headroom == 256 * 1024 - report.arena_bytes


def test_over_budget_is_reported_with_numbers(converted):
    _, tflite = converted["conv_chain"]
    report = tflm_export.verify(tflite, budget=tflm_export.Budget(ram="1KB", flash="1MB"), latency_runs=1)
    assert not report.fits and not report.resources["ram"].fits and report.resources["flash"].fits
    assert report.resources["ram"].headroom == 1024 - report.arena_bytes
    assert "DOES NOT FIT" in report.summary(print_fn=None)


def test_cli_export_over_budget_exits_nonzero(tmp_path):
    model = vgg(input_shape=(16, 16, 1), widths=(4, 8))
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", data_for(model))
    cmd = [sys.executable, "-m", "keras_cprune.cli", "export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "o"),
           "--data", str(tmp_path / "x.npy"), "--ram", "2KB"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "does not fit the budget: ram" in result.stderr and "> 2,048 B" in result.stderr


def test_runtime_abort_becomes_an_error_not_a_dead_process():
    inputs = keras.Input((8,))
    logits = keras.layers.Dense(4, kernel_initializer="zeros", bias_initializer="zeros")(inputs)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))  # untrained softmax: TFLM aborts
    tflite = tflm_export.convert(model, np.random.default_rng(0).uniform(size=(10, 8)))
    with pytest.raises(TFLMRuntimeError, match="signal 6|aborted"):
        tflm_export.verify(tflite)


@pytest.mark.parametrize("data,match", [
    (np.zeros((4, 10, 10, 1), "float32"), r"shape \(10, 10, 1\).*expects \(16, 16, 1\)"),
    (np.full((4, 16, 16, 1), np.nan, "float32"), "NaN or infinite"),
    (np.zeros((0, 16, 16, 1), "float32"), "empty"),
    (np.array([["a"] * 16] * 16)[None, ..., None], "numeric"),
])
def test_bad_representative_data(data, match):
    with pytest.raises(ConversionError, match=match):
        tflm_export.convert(vgg(input_shape=(16, 16, 1), widths=(4,)), data)


def test_representative_data_as_dataset_and_generator():
    import tensorflow as tf

    model = vgg(input_shape=(16, 16, 1), widths=(4,))
    x = data_for(model, 8)
    from_array = tflm_export.convert(model, x)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(8))).batch(4)
    assert tflm_export.convert(model, dataset) == from_array
    assert tflm_export.convert(model, lambda: iter(x)) == from_array


def test_float_only_op_is_named():
    inputs = keras.Input((4,))
    x = keras.layers.Lambda(lambda t: keras.ops.erf(t))(keras.layers.Dense(3)(inputs))
    with pytest.raises(ConversionError, match="Erf"):
        tflm_export.convert(keras.Model(inputs, keras.layers.Dense(2)(x)), np.random.rand(8, 4))


def test_existing_output_folder_is_refused_and_untouched(tmp_path, converted):
    _, tflite = converted["gap_head"]
    out = tmp_path / "fw"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    report = tflm_export.verify(tflite, latency_runs=1)
    with pytest.raises(OutputPathError, match="exists already"):
        tflm_export.write_sources(tflite, str(out), report)
    assert os.listdir(out) == ["keep.txt"] and sorted(os.listdir(tmp_path)) == ["fw"]


@pytest.mark.parametrize("text,expected", [("256KB", 262144), ("1MB", 1048576), ("512 KiB", 524288),
                                           (65536, 65536), ("1.5MB", 1572864)])
def test_budget_sizes(text, expected):
    assert tflm_export.parse_size(text) == expected


@pytest.mark.parametrize("bad", ["12 parsecs", "-4KB", "", 0])
def test_bad_budget_sizes(bad):
    with pytest.raises(BudgetError, match="ram="):
        tflm_export.Budget(ram=bad)


def test_boards_table():
    assert tflm_export.board_budget("nano33ble") == tflm_export.Budget(ram="256KB", flash="1MB")
    assert all(b.source and b.sram > 0 and b.flash > 0 for b in tflm_export.BOARDS.values())
    with pytest.raises(BudgetError, match="Known boards: nano33ble"):
        tflm_export.board_budget("arduino-uno-q")
