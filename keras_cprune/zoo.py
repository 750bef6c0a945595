"""Reference CNNs sized for 28x28 inputs: the default model of the examples and benchmarks."""
from __future__ import annotations


def _keras(keras):
    if keras is None:
        import keras
    return keras


def vgg(keras=None, input_shape=(28, 28, 1), widths=(16, 32, 64), classes=10, name="vgg"):
    """VGG-style chain: conv-BN-ReLU blocks with max pooling, Flatten, Dense head (logits)."""
    keras = _keras(keras)
    inputs = keras.Input(input_shape)
    x = inputs
    for i, width in enumerate(widths):
        x = keras.layers.Conv2D(width, 3, padding="same", name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(32, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
