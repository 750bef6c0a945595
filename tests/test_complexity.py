"""analyze(): hand-computed parameters, MACs and activation bytes per layer type, real architectures."""
import json

import keras
import numpy as np
import pytest

from keras_cprune import analyze
from layer_cases import CASES


def single(layer, input_shape):
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, layer(inputs))
    return analyze(model).layers[0], model


def test_add_counts_no_weights_and_its_output():
    a, b = keras.Input((4, 4, 3)), keras.Input((4, 4, 3))
    row = analyze(keras.Model([a, b], keras.layers.Add(name="add")([a, b]))).layer("add")
    assert (row.params, row.macs, row.act_bytes_int8, row.analysed) == (0, 0, 48, True)


@pytest.mark.parametrize("make,shape,params,macs,out", CASES, ids=lambda v: getattr(v, "__name__", None))
def test_layer_formulas(make, shape, params, macs, out):
    row, model = single(make(keras), shape)
    assert (row.params, row.macs, row.output_shape) == (params, macs, out)
    assert row.params == model.count_params()
    assert row.flops == 2 * macs
    assert row.act_bytes_int8 == int(np.prod(out)) and row.act_bytes_f32 == 4 * int(np.prod(out))
    assert row.weight_bytes_f32 == 4 * params
    assert row.analysed


def test_int8_weight_bytes_count_bias_as_int32_and_a_scale_per_channel():
    row, _ = single(keras.layers.Conv2D(8, 3), (10, 10, 3))
    assert row.weight_bytes_int8 == 216 * 1 + 8 * 4 + 8 * 4


def test_merge_layers_and_shares():
    a = keras.Input((4, 4, 2))
    b = keras.Input((4, 4, 3))
    cat = keras.layers.Concatenate(name="cat")([a, b])
    conv = keras.layers.Conv2D(5, 1, name="conv")(cat)
    prod = keras.layers.Multiply(name="mul")([conv, conv])
    report = analyze(keras.Model([a, b], prod))
    assert [r.output_shape for r in report.layers] == [(4, 4, 5), (4, 4, 5), (4, 4, 5)]
    assert report.layer("conv").params == 5 * 5 + 5 and report.params == 30
    assert report.layer("conv").param_share == 1.0 and report.layer("conv").flops_share == 1.0
    assert sum(r.memory_share for r in report.layers) == pytest.approx(1.0)


def test_peak_memory_of_chain_is_largest_input_plus_output():
    inputs = keras.Input((8, 8, 2))  # 128 B int8
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 256 B: peak 128 + 256
    x = keras.layers.MaxPooling2D(2)(x)  # 64 B
    x = keras.layers.Flatten()(x)
    report = analyze(keras.Model(inputs, keras.layers.Dense(3)(x)))
    assert report.peak_act_bytes_int8 == 384 and report.peak_act_bytes_f32 == 4 * 384


def test_peak_memory_keeps_residual_input_alive():
    inputs = keras.Input((8, 8, 4))  # 256 B, needed again by the Add
    y = keras.layers.Conv2D(4, 1, name="c")(inputs)  # 256 B
    out = keras.layers.Add(name="add")([inputs, y])  # 256 B: input + y + out alive
    report = analyze(keras.Model(inputs, out))
    assert report.peak_act_bytes_int8 == 768 and report.peak_node == "add"


def test_unknown_layer_is_counted_and_listed_not_crashing():
    class Scale(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.w

    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, Scale(name="custom")(keras.layers.Conv2D(3, 1)(inputs)))
    report = analyze(model)
    assert report.not_analysed == ["custom"]
    assert report.params == model.count_params() == 12 + 3
    assert "not analysed" in report.summary(print_fn=None)


def test_exports_table_json_csv_and_plot(tmp_path):
    from models import vgg

    report = analyze(vgg(keras))
    text = report.summary(print_fn=None)
    assert "conv0 (Conv2D)" in text and f"{report.params:,}" in text
    data = json.loads(report.to_json())
    assert data["params"] == report.params and len(data["layers"]) == len(report.layers)
    assert report.to_csv().splitlines()[0].startswith("name,class_name,output_shape,params,macs")
    png = report.plot(str(tmp_path / "shares.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


APPS = {
    "MobileNet": (keras.applications.MobileNet, (64, 64, 3)),
    "MobileNetV2": (keras.applications.MobileNetV2, (64, 64, 3)),
    "MobileNetV3Small": (keras.applications.MobileNetV3Small, (64, 64, 3)),
    "ResNet50": (keras.applications.ResNet50, (64, 64, 3)),
    "EfficientNetB0": (keras.applications.EfficientNetB0, (64, 64, 3)),
    "DenseNet121": (keras.applications.DenseNet121, (64, 64, 3)),
    "NASNetMobile": (keras.applications.NASNetMobile, (64, 64, 3)),
}


@pytest.mark.parametrize("name", APPS)
def test_params_equal_count_params_on_applications(name):
    ctor, shape = APPS[name]
    model = ctor(weights=None, input_shape=shape, classes=10)
    report = analyze(model)
    assert report.params == model.count_params()
    analysed = [r for r in report.layers if r.analysed]
    assert len(analysed) >= len(report.layers) - 2  # at most the preprocessing Normalization


def test_resnet50_macs():
    """Keras' ResNet50 is v1 (stride 2 on the first 1x1 conv of a stage): 3.86 GMACs, He et al.'s
    "3.8 x 10^9". Torchvision-style v1.5 (stride on the 3x3) is the often-quoted ~4.1 GMACs."""
    report = analyze(keras.applications.ResNet50(weights=None))
    assert report.macs == pytest.approx(3.858e9, rel=0.01)
    assert analyze(resnet50_v15()).macs == pytest.approx(4.1e9, rel=0.01)


def resnet50_v15():
    """ResNet-50 v1.5 built from its definition (bottlenecks 3-4-6-3, stride on the 3x3 conv)."""
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.Conv2D(64, 7, strides=2, padding="same")(inputs)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for stage, (blocks, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)]):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 0 else 1
            shortcut = x
            if block == 0:
                shortcut = keras.layers.Conv2D(4 * width, 1, strides=stride)(x)
            y = keras.layers.Conv2D(width, 1)(x)
            y = keras.layers.Conv2D(width, 3, strides=stride, padding="same")(y)
            y = keras.layers.Conv2D(4 * width, 1)(y)
            x = keras.layers.Add()([shortcut, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(1000)(x))


def test_mobilenetv2_macs():
    report = analyze(keras.applications.MobileNetV2(weights=None, alpha=1.0))
    assert report.macs == pytest.approx(300e6, rel=0.02)
