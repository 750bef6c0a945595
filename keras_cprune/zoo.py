"""Reference CNNs sized for 28x28 inputs: the default model of the examples and benchmarks.

Each takes ``width`` (a uniform width multiplier, the obvious alternative to pruning) and the
``keras`` module to build with (Keras 3 by default, or tf_keras). BatchNorm uses momentum 0.9 so
its moving statistics settle within the few hundred steps of a short CPU run.
"""
from __future__ import annotations


def _keras(keras):
    if keras is None:
        import keras
    return keras


def _w(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def vgg(keras=None, input_shape=(28, 28, 1), widths=(16, 32, 64), classes=10, name="vgg", width=1.0):
    """VGG-style chain: conv-BN-ReLU blocks with max pooling, Flatten, Dense head (logits)."""
    keras = _keras(keras)
    inputs = keras.Input(input_shape)
    x = inputs
    for i, channels in enumerate(widths):
        x = keras.layers.Conv2D(_w(channels, width), 3, padding="same", name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(_w(32, width), activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet(keras=None, input_shape=(28, 28, 1), classes=10, name="resnet", width=1.0):
    """ResNet-style: a stem and three stages of two basic blocks with residual adds."""
    keras = _keras(keras)
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.ReLU(name="stem_relu")(layers.BatchNormalization(momentum=0.9, name="stem_bn")(
        layers.Conv2D(_w(16, width), 3, padding="same", use_bias=False, name="stem")(inputs)))
    for stage, channels in enumerate((16, 32, 64)):
        for block in range(2):
            stride = 2 if block == 0 and stage > 0 else 1
            prefix = f"s{stage}b{block}"
            y = layers.Conv2D(_w(channels, width), 3, strides=stride, padding="same", use_bias=False,
                              name=f"{prefix}_conv1")(x)
            y = layers.ReLU(name=f"{prefix}_relu1")(layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn1")(y))
            y = layers.Conv2D(_w(channels, width), 3, padding="same", use_bias=False, name=f"{prefix}_conv2")(y)
            y = layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn2")(y)
            if stride != 1 or int(x.shape[-1]) != _w(channels, width):
                x = layers.BatchNormalization(momentum=0.9, name=f"{prefix}_proj_bn")(layers.Conv2D(
                    _w(channels, width), 1, strides=stride, use_bias=False, name=f"{prefix}_proj")(x))
            x = layers.ReLU(name=f"{prefix}_out")(layers.Add(name=f"{prefix}_add")([x, y]))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(classes, name="logits")(x), name=name)


def mobilenetv2(keras=None, input_shape=(28, 28, 1), classes=10, name="mobilenetv2", width=1.0):
    """MobileNetV2-style: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 project)."""
    keras = _keras(keras)
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(_w(16, width), 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.ReLU(6.0, name="stem_relu")(layers.BatchNormalization(momentum=0.9, name="stem_bn")(x))
    for i, (channels, stride, expand) in enumerate([(16, 1, 1), (24, 2, 4), (24, 1, 4), (32, 2, 4),
                                                     (32, 1, 4), (64, 2, 4), (64, 1, 4)]):
        p, out = f"b{i}", _w(channels, width)
        y = x
        if expand != 1:
            y = layers.Conv2D(int(x.shape[-1]) * expand, 1, use_bias=False, name=f"{p}_expand")(y)
            y = layers.ReLU(6.0, name=f"{p}_expand_relu")(layers.BatchNormalization(momentum=0.9, name=f"{p}_expand_bn")(y))
        y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{p}_dw")(y)
        y = layers.ReLU(6.0, name=f"{p}_dw_relu")(layers.BatchNormalization(momentum=0.9, name=f"{p}_dw_bn")(y))
        y = layers.BatchNormalization(momentum=0.9, name=f"{p}_project_bn")(
            layers.Conv2D(out, 1, use_bias=False, name=f"{p}_project")(y))
        x = layers.Add(name=f"{p}_add")([x, y]) if stride == 1 and int(x.shape[-1]) == out else y
    x = layers.Conv2D(_w(128, width), 1, use_bias=False, name="head")(x)
    x = layers.ReLU(6.0, name="head_relu")(layers.BatchNormalization(momentum=0.9, name="head_bn")(x))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(classes, name="logits")(x), name=name)


ARCHITECTURES = {"vgg": vgg, "resnet": resnet, "mobilenetv2": mobilenetv2}
