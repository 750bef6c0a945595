"""One arena figure everywhere (issue 26.3): the Keras-side estimate, the budget search, the export's
fit verdict and the firmware's ``kTensorArenaSize`` all describe the same TFLM build."""
import re

import keras
import numpy as np
import pytest

import tflm_export
from keras_cprune import Budget, estimate_arena, prune_to_budget, tradeoff
from keras_cprune.cli import main
from keras_cprune.zoo import mobilenetv2, resnet, vgg
from models import randomize
from tflm_export.micro.planner import align, predict_arena_from_tflite


def conv_1d(keras):
    """The Conv1D family and 1-D pooling with strides: lowered as (1, k) 2-D ops."""
    inputs = keras.Input((32, 3))
    x = keras.layers.Conv1D(8, 5, strides=2, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.SeparableConv1D(8, 3, strides=2, padding="same", name="sep")(x)
    x = keras.layers.DepthwiseConv1D(3, name="dw")(x)
    x = keras.layers.AveragePooling1D(2, name="avg")(keras.layers.MaxPooling1D(2, strides=1, name="max")(x))
    x = keras.layers.GlobalAveragePooling1D(name="gap")(keras.layers.Conv1D(16, 3, padding="same", name="head")(x))
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x), name="conv_1d")


def transposed(keras):
    """A strided transposed conv (CMSIS-NN scratch by stride), separable and strided convs, pooling."""
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2DTranspose(24, 3, strides=2, padding="same", activation="relu", name="up")(inputs)
    x = keras.layers.SeparableConv2D(20, 3, strides=2, padding="same", name="sep")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, name="conv")(x)
    return keras.Model(inputs, keras.layers.AveragePooling2D(2, name="avg")(x), name="transposed")


MODELS = {"vgg": lambda: vgg(keras, input_shape=(32, 32, 3)), "resnet": lambda: resnet(keras),
          "mobilenetv2": lambda: mobilenetv2(keras), "conv_1d": lambda: conv_1d(keras),
          "transposed": lambda: transposed(keras)}


def data_for(model, n=16):
    return np.random.default_rng(0).uniform(0, 1, (n,) + tuple(model.inputs[0].shape[1:])).astype("float32")


@pytest.mark.parametrize("name", MODELS)
def test_estimate_arena_equals_the_flatbuffers_prediction_on_each_build(name):
    """The Keras lowering carries each conv's and pool's window, so the CMSIS-NN scratch rules apply
    exactly: no approximation, the same bytes as the converted model's replay."""
    model = MODELS[name]()
    randomize(model, seed=1)
    tflite = tflm_export.convert(model, data_for(model))
    for target in ("cortex-m4/cmsis_nn", "cortex-m55/cmsis_nn"):
        estimate, predicted = estimate_arena(model, target=target), predict_arena_from_tflite(tflite, target)
        assert estimate.exact and predicted.exact, (estimate.approximated, predicted.approximated)
        assert estimate.bytes == predicted.bytes, (name, target)


def settings_arena(folder) -> int:
    return int(re.search(r"kTensorArenaSize = (\d+);", (folder / "model_settings.h").read_text()).group(1))


def test_a_model_pruned_for_a_board_exports_within_the_same_budget(tmp_path):
    """prune_to_budget(..., board=, margin=) then export with the same arguments: it fits, and the
    firmware reserves exactly the figure judged, within the budget's RAM."""
    model = vgg(keras, input_shape=(16, 16, 3))
    randomize(model, seed=2)
    unpruned = estimate_arena(model, target="cortex-m4/cmsis_nn", assume_trained=True).bytes
    budget = Budget(ram=int(0.7 * unpruned))
    pruned = prune_to_budget(model, budget, board="nano33ble", margin=512, verbose=0)
    report = tflm_export.export(pruned, data_for(pruned), str(tmp_path / "fw"), budget=budget, board="nano33ble",
                                margin=512, latency_runs=0)
    assert report.fits and report.target == "cortex-m4/cmsis_nn" and report.arena.source == "predicted"
    assert settings_arena(tmp_path / "fw") == report.arena_size == align(report.arena.bytes + 512) <= budget.ram
    assert report.host_arena.source == "measured" and not report.plan_mismatch


def test_a_board_without_a_modelled_build_is_judged_on_the_host_figure_and_says_so(tmp_path):
    model = vgg(keras, input_shape=(16, 16, 1), widths=(4, 8))
    report = tflm_export.export(model, data_for(model), str(tmp_path / "fw"), board="esp32s3", latency_runs=0)
    assert report.target == "host" and report.arena is report.host_arena and report.arena.source == "measured"
    assert "the host figure, not esp32s3's own TFLM build" in report.summary(print_fn=None)
    assert settings_arena(tmp_path / "fw") == report.arena_size == report.arena.bytes <= 512 * 1024
    assert "PyPI tflite-micro runtime" in (tmp_path / "fw" / "model_settings.h").read_text()


def test_tradeoff_prices_the_target_build():
    model = vgg(keras, input_shape=(16, 16, 1), widths=(4, 8))
    table = tradeoff(model, modes=("MA",), ratios=(0.0,), target="cortex-m7/cmsis_nn")
    assert table.target == "cortex-m7/cmsis_nn" and "arena on cortex-m7/cmsis_nn" in table.summary(print_fn=None)
    assert table.points[0].arena_bytes == estimate_arena(model, target="cortex-m7/cmsis_nn", assume_trained=True).bytes


def test_cli_export_board_target_and_margin(tmp_path):
    model = vgg(keras, input_shape=(16, 16, 1), widths=(4, 8))
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", data_for(model))
    tflite = tflm_export.convert(model, data_for(model))
    args = ["export", str(tmp_path / "m.keras"), "--data", str(tmp_path / "x.npy"), "--test-samples", "2"]
    assert main(args + ["-o", str(tmp_path / "a"), "--board", "rp2040", "--margin", "1KB"]) == 0
    assert settings_arena(tmp_path / "a") == align(predict_arena_from_tflite(tflite, "cortex-m0plus/cmsis_nn").bytes
                                                   + 1024)
    assert main(args + ["-o", str(tmp_path / "b"), "--board", "rp2040", "--target", "cortex-m55/cmsis_nn"]) == 0
    assert settings_arena(tmp_path / "b") == align(predict_arena_from_tflite(tflite, "cortex-m55/cmsis_nn").bytes)
    tight = align(predict_arena_from_tflite(tflite, "cortex-m4/cmsis_nn").bytes)
    assert main(args + ["-o", str(tmp_path / "c"), "--target", "cortex-m4/cmsis_nn", "--ram", str(tight)]) == 0
    assert main(args + ["-o", str(tmp_path / "d"), "--target", "cortex-m4/cmsis_nn", "--ram", str(tight),
                        "--margin", "16"]) == 1  # the margin tips it over
