"""Arena and flash predicted for tf_keras models against the TFLM runtime: the converter lowers a
tf_keras Flatten to one RESHAPE by a constant shape (merged into a 1-D squeeze before it),
expands 1-D pooling at axis 2 and converts a nearest UpSampling2D to RESIZE_NEAREST_NEIGHBOR,
unlike Keras 3; a tf_keras LSTM fuses into UNIDIRECTIONAL_SEQUENCE_LSTM at batch 1."""
import pytest
import tf_keras as keras

from keras_cprune import zoo
from keras_cprune.pruning.context import PruneContext
from models import random_branched_model, random_decoder_model, randomize
from tflm_checks import assert_exact, predicted_and_measured

L = keras.layers


def one_d(kind):
    inputs = keras.Input((32, 6))
    if kind == "conv":
        x = L.Conv1D(8, 3, padding="same", activation="relu", name="c1")(inputs)
        x = L.Conv1D(8, 3, strides=2, name="c2")(L.MaxPooling1D(2, name="pool")(x))
        x = L.GlobalAveragePooling1D(name="gap")(x)
    else:
        x = L.SeparableConv1D(8, 3, activation="relu", name="sep")(L.DepthwiseConv1D(3, padding="same", name="dw")(inputs))
        x = L.Flatten(name="flat")(L.AveragePooling1D(2, name="pool")(x))
    return keras.Model(inputs, L.Dense(3, name="logits")(x), name=f"one_d_{kind}")


BUILDS = {"vgg": lambda: zoo.vgg(keras), "resnet8": lambda: zoo.resnet8(keras), "conv1d-pool1d": lambda: one_d("conv"),
          "separable1d-pool1d-flatten": lambda: one_d("separable"), "kws_lstm": lambda: zoo.kws_lstm(keras, units=8),
          **{f"random{seed}": (lambda seed=seed: random_branched_model(keras, seed)) for seed in (2, 3)},
          # U-Nets with nearest UpSampling2D: RESIZE_NEAREST_NEIGHBOR from tf_keras (Keras 3: TILE, not in TFLM)
          **{f"decoder{seed}": (lambda seed=seed: random_decoder_model(keras, seed)) for seed in (0, 1)}}


@pytest.mark.parametrize("name", BUILDS)
def test_tf_keras_arena_and_flash_are_exact_before_and_after_pruning(name):
    model = BUILDS[name]()
    randomize(model, seed=3)
    context = PruneContext.of(model)
    for removed in (set(), context.choose("MA", 0.5)[0]):
        assert_exact(*predicted_and_measured(model, removed, context))
