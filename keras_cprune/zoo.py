"""Reference CNNs: three sized for 28x28 inputs (the default models of the examples and
benchmarks), the MLPerf Tiny models and a recurrent keyword spotter (`kws_lstm`).

The builders share these arguments (`fc_autoencoder` takes ``input_dim`` for the last three):

    keras: the Keras module to build with: None (default) for Keras 3, or ``tf_keras``.
    input_shape: input shape without batch.
    classes: units of the final Dense layer (logits; softmax for the MLPerf Tiny models).
    name: the model's name.
    units: (`kws_lstm`) the LSTM's units.
    width: (the three 28x28 models) a uniform width multiplier of every layer's channels, the
        obvious alternative to pruning; channels are rounded, at least 1.
    widths: (`vgg`) the channels of its conv blocks, one block each.
    alpha: (`mobilenet_v1_vww`) MobileNetV1's width multiplier (0.25 as in MLPerf Tiny).

Each returns a new, untrained Functional `keras.Model`, e.g.
``keras_cprune.analyze(keras_cprune.zoo.resnet8()).summary()``.

BatchNorm of the 28x28 models uses momentum 0.9 so its moving statistics settle within the few
hundred steps of a short CPU run. `ARCHITECTURES` and `MLPERF_TINY` map names to builders.
"""
from __future__ import annotations


def _keras(keras):
    if keras is None:
        import keras
    return keras


def _w(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def vgg(keras=None, input_shape=(28, 28, 1), widths=(16, 32, 64), classes=10, name="vgg", width=1.0):
    """VGG-style chain: conv-BN-ReLU blocks with max pooling, Flatten, Dense head (logits).
    """
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
    """ResNet-style: a stem and three stages (16, 32, 64 channels) of two basic blocks with
    residual adds, global average pooling and a Dense head (logits).
    """
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
    """MobileNetV2-style: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 project),
    a 1x1 head, global average pooling and a Dense head (logits).
    """
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


# MLPerf Tiny reference models (github.com/mlcommons/tiny, benchmark/training/*), rebuilt from
# their published definitions: same layers, sizes, strides, biases, BatchNorm placement (Keras
# default BatchNorm settings), activations and layer creation order, but no L2 regularizers.
# The three classifiers end in a softmax Dense, as the references do.


def resnet8(keras=None, input_shape=(32, 32, 3), classes=10, name="resnet8"):
    """ResNet-8 of MLPerf Tiny image_classification/keras_model.py (resnet_v1_eembc, 16 filters): 78,666 params.
    """
    keras = _keras(keras)
    layers = keras.layers

    def conv(filters, kernel, stride, label):
        return layers.Conv2D(filters, kernel, strides=stride, padding="same", kernel_initializer="he_normal",
                             name=label)

    inputs = keras.Input(input_shape)
    x = layers.ReLU(name="relu0")(layers.BatchNormalization(name="bn0")(conv(16, 3, 1, "conv0")(inputs)))
    for stack, filters in enumerate((16, 32, 64), start=1):
        stride = 1 if stack == 1 else 2
        y = conv(filters, 3, stride, f"s{stack}_conv1")(x)
        y = layers.ReLU(name=f"s{stack}_relu1")(layers.BatchNormalization(name=f"s{stack}_bn1")(y))
        y = layers.BatchNormalization(name=f"s{stack}_bn2")(conv(filters, 3, 1, f"s{stack}_conv2")(y))
        if stack > 1:  # 1x1 projection (no BatchNorm), created after the main branch as in the reference
            x = conv(filters, 1, stride, f"s{stack}_shortcut")(x)
        x = layers.ReLU(name=f"s{stack}_relu2")(layers.Add(name=f"s{stack}_add")([x, y]))
    x = layers.AveragePooling2D(int(min(x.shape[1:3])), name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(classes, activation="softmax", kernel_initializer="he_normal", name="fc")(x)
    return keras.Model(inputs, outputs, name=name)


def ds_cnn(keras=None, input_shape=(49, 10, 1), classes=12, name="ds_cnn"):
    """DS-CNN (small) of MLPerf Tiny keyword_spotting/keras_model.py (model_architecture 'ds_cnn'): 24,908 params.
    """
    keras = _keras(keras)
    layers = keras.layers
    filters = 64
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", name="conv0")(inputs)
    x = layers.ReLU(name="relu0")(layers.BatchNormalization(name="bn0")(x))
    x = layers.Dropout(0.2, name="drop0")(x)
    for i in range(1, 5):
        x = layers.DepthwiseConv2D((3, 3), padding="same", name=f"dw{i}")(x)
        x = layers.ReLU(name=f"dw{i}_relu")(layers.BatchNormalization(name=f"dw{i}_bn")(x))
        x = layers.Conv2D(filters, (1, 1), padding="same", name=f"pw{i}")(x)
        x = layers.ReLU(name=f"pw{i}_relu")(layers.BatchNormalization(name=f"pw{i}_bn")(x))
    x = layers.Dropout(0.4, name="drop1")(x)
    # The reference pools over (input rows // 2, input columns // 2): (24, 5) on the 25x5 map.
    x = layers.AveragePooling2D((input_shape[0] // 2, input_shape[1] // 2), name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(classes, activation="softmax", name="fc")(x)
    return keras.Model(inputs, outputs, name=name)


def mobilenet_v1_vww(keras=None, input_shape=(96, 96, 3), classes=2, alpha=0.25, name="mobilenet_v1_vww"):
    """MobileNetV1 (alpha 0.25) of MLPerf Tiny visual_wake_words/vww_model.py (mobilenet_v1): 221,794 params.
    """
    keras = _keras(keras)
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(_w(32, alpha), 3, strides=2, padding="same", kernel_initializer="he_normal", name="conv0")(inputs)
    x = layers.ReLU(name="relu0")(layers.BatchNormalization(name="bn0")(x))
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for i, (channels, stride) in enumerate(blocks, start=1):
        # (the reference's kernel_initializer never reached the depthwise kernel: default init)
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", name=f"dw{i}")(x)
        x = layers.ReLU(name=f"dw{i}_relu")(layers.BatchNormalization(name=f"dw{i}_bn")(x))
        x = layers.Conv2D(_w(channels, alpha), 1, padding="same", kernel_initializer="he_normal", name=f"pw{i}")(x)
        x = layers.ReLU(name=f"pw{i}_relu")(layers.BatchNormalization(name=f"pw{i}_bn")(x))
    x = layers.AveragePooling2D(tuple(int(d) for d in x.shape[1:3]), name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(classes, activation="softmax", name="fc")(x)
    return keras.Model(inputs, outputs, name=name)


def fc_autoencoder(keras=None, input_dim=640, name="fc_autoencoder"):
    """Dense autoencoder of MLPerf Tiny anomaly_detection/keras_model.py (get_model, 640 inputs): 269,992 params.
    """
    keras = _keras(keras)
    layers = keras.layers
    inputs = keras.Input((input_dim,))
    x = inputs
    for i, units in enumerate((128, 128, 128, 128, 8, 128, 128, 128, 128)):
        x = layers.Dense(units, name=f"fc{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(layers.BatchNormalization(name=f"bn{i}")(x))
    outputs = layers.Dense(input_dim, name="out")(x)
    return keras.Model(inputs, outputs, name=name)


def kws_lstm(keras=None, input_shape=(49, 10), classes=12, name="kws_lstm", units=24):
    """Keyword spotting on 49 MFCC frames x 10 coefficients: Conv1D(32, 3) and Conv1D(32, 3) front end,
    LSTM(``units``) over the 45 remaining frames (its last output), Dense softmax: 9,868 params with
    24 units. `tflm_export.convert` fuses the LSTM into TFLite Micro's UNIDIRECTIONAL_SEQUENCE_LSTM;
    pruning removes front-end filters and the LSTM's matching input-kernel rows (its units stay).
    """
    keras = _keras(keras)
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Conv1D(32, 3, activation="relu", name="conv0")(inputs)
    x = layers.Conv1D(32, 3, activation="relu", name="conv1")(x)
    x = layers.LSTM(units, name="lstm")(x)
    outputs = layers.Dense(classes, activation="softmax", name="fc")(x)
    return keras.Model(inputs, outputs, name=name)


MLPERF_TINY = {"resnet8": resnet8, "ds_cnn": ds_cnn, "mobilenet_v1_vww": mobilenet_v1_vww,
               "fc_autoencoder": fc_autoencoder}
