"""tflm_export.convert: real int8 conversions of Keras 3 and tf_keras models, and the errors for bad input."""
import itertools

import keras
import numpy as np
import pytest

import tflm_export
from keras_cprune.errors import ConversionError, ModelError, ModelFileError
from keras_cprune.zoo import vgg
from tflm_export.micro.flatbuffer import read_model


def small_vgg():
    return vgg(keras, input_shape=(16, 16, 1), widths=(4,))


def uniform(n, shape=(16, 16, 1), seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, *shape)).astype("float32")


def weight_scales(tflite, name_part):
    """Quantization scales of the constant tensor whose name contains ``name_part``."""
    import tensorflow as tf

    details = tf.lite.Interpreter(model_content=tflite).get_tensor_details()
    return next(d["quantization_parameters"]["scales"] for d in details if name_part in d["name"]
                and len(d["shape"]) == 4)


def test_int8_everywhere_with_per_channel_conv_weights():
    model = small_vgg()
    tflite = tflm_export.convert(model, uniform(8))
    info = read_model(tflite)
    assert info.inputs[0].dtype == info.outputs[0].dtype == "int8"
    assert info.inputs[0].shape == (1, 16, 16, 1) and info.float_ops == ()
    assert abs(info.inputs[0].scale - 1 / 255) < 1e-4 and info.inputs[0].zero_point == -128  # calibrated on [0, 1)
    assert len(weight_scales(tflite, "conv")) == 4  # one scale per output channel of the 4-filter conv


@pytest.mark.parametrize("io_dtype,ops", [("uint8", {"QUANTIZE": 2}), ("float32", {"QUANTIZE": 1, "DEQUANTIZE": 1})])
def test_io_dtype(io_dtype, ops):
    info = read_model(tflm_export.convert(small_vgg(), uniform(8), io_dtype=io_dtype))
    assert info.inputs[0].dtype == info.outputs[0].dtype == io_dtype
    assert {op: info.op_counts.get(op, 0) for op in ops} == ops and info.float_ops == ()


def test_calibration_uses_the_first_num_samples_only():
    data = np.concatenate([uniform(100), np.full((50, 16, 16, 1), 50.0, "float32")])
    scale = read_model(tflm_export.convert(small_vgg(), data)).inputs[0].scale
    assert abs(scale - 1 / 255) < 1e-4  # the 50.0 samples after the first 100 were not read
    scale = read_model(tflm_export.convert(small_vgg(), data, num_samples=101)).inputs[0].scale
    assert abs(scale - 50 / 255) < 1e-2
    endless = (uniform(1, seed=i)[0] for i in itertools.count())  # a generator is read lazily
    assert read_model(tflm_export.convert(small_vgg(), endless, num_samples=4)).inputs[0].shape == (1, 16, 16, 1)


def test_representative_data_as_dataset_generator_and_callable():
    import tensorflow as tf

    model, x = small_vgg(), uniform(8)
    from_array = tflm_export.convert(model, x)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(8))).batch(3)
    assert tflm_export.convert(model, dataset) == from_array
    assert tflm_export.convert(model, lambda: ([s[None]] for s in x)) == from_array  # TF's [x] convention
    assert tflm_export.convert(model, iter(x)) == from_array


@pytest.mark.parametrize("data,match", [
    (np.zeros((4, 10, 10, 1), "float32"),
     r"samples of shape \(10, 10, 1\) \(received an array of shape \(4, 10, 10, 1\)\); the model input expects "
     r"\(16, 16, 1\)"),
    (np.zeros((4, 16, 16), "float32"), r"array of shape \(4, 16, 16\)\); the model input expects \(16, 16, 1\)"),
    (np.concatenate([uniform(3), np.full((1, 16, 16, 1), np.nan, "float32")]), r"NaN or infinite .*sample 3"),
    (np.full((2, 16, 16, 1), np.inf, "float32"), "NaN or infinite"),
    (np.zeros((0, 16, 16, 1), "float32"), "empty"),
    ([], "empty"),
    (np.array([["a"] * 16] * 16)[None, ..., None], "real numbers"),
])
def test_bad_representative_data(data, match):
    with pytest.raises(ConversionError, match=match):
        tflm_export.convert(small_vgg(), data)


def test_bad_arguments():
    with pytest.raises(ConversionError, match="io_dtype must be one of"):
        tflm_export.convert(small_vgg(), uniform(2), io_dtype="int16")
    with pytest.raises(ModelError, match="Received: model=list"):
        tflm_export.convert([1, 2], uniform(2))
    a, b = keras.Input((4,)), keras.Input((6,))
    two = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Concatenate()([a, b])))
    with pytest.raises(ConversionError, match="has 2 inputs"):
        tflm_export.convert(two, [np.zeros((2, 4)), np.zeros((2, 6))])
    ids = keras.Input((5,), dtype="int32")
    with pytest.raises(ConversionError, match="is int32; int8 export calibrates and quantizes a float input"):
        tflm_export.convert(keras.Model(ids, keras.layers.Embedding(10, 3)(ids)), np.zeros((2, 5), "int32"))


def test_float_only_op_is_named():
    inputs = keras.Input((4,))
    x = keras.layers.Lambda(lambda t: keras.ops.erf(t))(keras.layers.Dense(3)(inputs))
    with pytest.raises(ConversionError, match="op.s. Erf have no int8 TFLite builtin kernel"):
        tflm_export.convert(keras.Model(inputs, keras.layers.Dense(2)(x)), np.random.rand(8, 4))


def test_float_ops_in_a_flatbuffer_are_found():
    import tensorflow as tf

    float_model = tf.lite.TFLiteConverter.from_keras_model(small_vgg()).convert()  # no quantization
    assert set(read_model(float_model).float_ops) >= {"CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D"}


def test_model_is_not_modified():
    model = small_vgg()
    weights, config = [w.copy() for w in model.get_weights()], model.get_config()
    tflm_export.convert(model, uniform(4))
    assert model.get_config() == config
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv, self.pool, self.dense = keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(), \
            keras.layers.Dense(3)

    def call(self, x):
        return self.dense(self.pool(self.conv(x)))


def test_subclassed_and_free_size_models_take_the_shape_of_the_data():
    subclassed = Subclassed()
    subclassed(uniform(1))
    assert read_model(tflm_export.convert(subclassed, uniform(4))).inputs[0].shape == (1, 16, 16, 1)
    inputs = keras.Input((None, None, 1))
    free = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(4, 3)(inputs))))
    info = read_model(tflm_export.convert(free, uniform(4, (12, 10, 1))))
    assert info.inputs[0].shape == (1, 12, 10, 1) and info.macs == 10 * 8 * 4 * 9 + 4 * 3


def test_tf_keras_model_converts():
    tf_keras = pytest.importorskip("tf_keras")
    inputs = tf_keras.Input((8, 8, 1))
    x = tf_keras.layers.Flatten()(tf_keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    info = read_model(tflm_export.convert(tf_keras.Model(inputs, tf_keras.layers.Dense(3)(x)), uniform(4, (8, 8, 1))))
    assert info.op_counts == {"CONV_2D": 1, "RESHAPE": 1, "FULLY_CONNECTED": 1}
    assert info.macs == 6 * 6 * 4 * 9 + 144 * 3


def test_macs_from_the_flatbuffer_match_keras_cprune_analyze():
    from keras_cprune import analyze

    model = vgg(keras, input_shape=(16, 16, 1), widths=(4, 8))  # same-padded convs, 2x2 pools, Dense 32, 10
    by_hand = 16 * 16 * 4 * 9 + 8 * 8 * 8 * 9 * 4 + 4 * 4 * 8 * 32 + 32 * 10
    assert read_model(tflm_export.convert(model, uniform(4))).macs == analyze(model).macs == by_hand == 32064


def test_corrupt_flatbuffer_is_a_model_file_error():
    tflite = tflm_export.convert(small_vgg(), uniform(4))
    with pytest.raises(ModelFileError, match="200 bytes.*corrupt"):
        read_model(tflite[:200])
    with pytest.raises(ModelFileError, match=r"'TFL3'.*Received: 11 bytes starting with b'not a mo'"):
        tflm_export.verify(b"not a model")


def test_per_tensor_dense_weights_shrink_the_arena_of_a_dense_stack():
    """MLPerf Tiny's FC autoencoder: per-channel Dense weights put 8 bytes per unit of every
    FULLY_CONNECTED into the TFLM arena; per tensor they do not, and the planner predicts both."""
    import tensorflow as tf

    from keras_cprune.zoo import fc_autoencoder
    from tflm_export.micro.planner import align, predict_arena_from_tflite

    model = fc_autoencoder(keras)
    data = uniform(16, (640,))
    arenas = {}
    for per_channel in (True, False):
        tflite = tflm_export.convert(model, data, per_channel_dense=per_channel)
        details = tf.lite.Interpreter(model_content=tflite).get_tensor_details()
        kernels = [d for d in details if len(d["shape"]) == 2 and d["shape"][0] != 1]  # (units, inputs) weights
        assert len(kernels) == 10  # the ten Dense layers
        assert {len(d["quantization_parameters"]["scales"]) == d["shape"][0] for d in kernels} == {per_channel}
        arenas[per_channel] = tflm_export.find_min_arena(tflite).bytes
        assert align(predict_arena_from_tflite(tflite).bytes) == arenas[per_channel]  # 16-byte search step
    units = sum(layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense))
    assert arenas[True] - arenas[False] >= 8 * units - 16 * 10  # the multipliers and shifts, less alignment
    with pytest.raises(ConversionError, match="per_channel_dense"):
        tflm_export.convert(model, data, per_channel_dense="no")
