"""Layer cases with hand-computed parameters, MACs and output shapes, for Keras 3 and tf_keras.

Each case builds its layer from the Keras module passed in."""
import numpy as np


# (layer, input shape, params, MACs, output shape) -- each worked out by hand in the comment.
CASES = [
    # 3x3x3 kernel, 8 filters, valid on 10x10 -> 8x8x8: params 27*8+8, MACs 64*8*27
    (lambda keras: keras.layers.Conv2D(8, 3), (10, 10, 3), 224, 13824, (8, 8, 8)),
    # stride 2 same -> 5x5x4: MACs 25*4*27
    (lambda keras: keras.layers.Conv2D(4, 3, strides=2, padding="same"), (10, 10, 3), 112, 2700, (5, 5, 4)),
    # dilation 2 -> effective 5x5 kernel, valid -> 6x6x4: MACs 36*4*27
    (lambda keras: keras.layers.Conv2D(4, 3, dilation_rate=2), (10, 10, 3), 112, 3888, (6, 6, 4)),
    # 2 groups: each filter sees 2 of 4 channels: params 9*2*8+8, MACs 100*8*18
    (lambda keras: keras.layers.Conv2D(8, 3, groups=2, padding="same"), (10, 10, 4), 152, 14400, (10, 10, 8)),
    # depth multiplier 2 -> 6 channels 8x8: params 9*6+6, MACs 64*6*9
    (lambda keras: keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (10, 10, 3), 60, 3456, (8, 8, 6)),
    # separable: depthwise 9*6 + pointwise 6*5 + bias 5; MACs 100*6*9 + 100*6*5
    (lambda keras: keras.layers.SeparableConv2D(5, 3, depth_multiplier=2, padding="same"), (10, 10, 3), 89, 8400, (10, 10, 5)),
    # transpose conv scatters each of 5x5x3 inputs over 3x3x4: MACs 25*3*9*4
    (lambda keras: keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same"), (5, 5, 3), 112, 2700, (10, 10, 4)),
    # Conv1D: kernel 5, 2 -> 6 channels, 16 output steps: params 5*2*6+6, MACs 16*6*10
    (lambda keras: keras.layers.Conv1D(6, 5), (20, 2), 66, 960, (16, 6)),
    # Dense on a 3-D input applies to the last axis of each of 4 rows: MACs 4*5*7
    (lambda keras: keras.layers.Dense(7), (4, 5), 42, 140, (4, 7)),
    (lambda keras: keras.layers.Dense(7, use_bias=False), (5,), 35, 35, (7,)),
    # BatchNorm: gamma, beta, mean, variance per channel; folded, so 0 MACs
    (lambda keras: keras.layers.BatchNormalization(), (10, 10, 3), 12, 0, (10, 10, 3)),
    (lambda keras: keras.layers.ReLU(6.0), (10, 10, 3), 0, 0, (10, 10, 3)),
    (lambda keras: keras.layers.MaxPooling2D(2), (10, 10, 3), 0, 0, (5, 5, 3)),
    (lambda keras: keras.layers.AveragePooling2D(2), (10, 10, 3), 0, 0, (5, 5, 3)),
    (lambda keras: keras.layers.GlobalAveragePooling2D(), (10, 10, 3), 0, 0, (3,)),
    (lambda keras: keras.layers.GlobalMaxPooling2D(), (10, 10, 3), 0, 0, (3,)),
    (lambda keras: keras.layers.ZeroPadding2D(1), (10, 10, 3), 0, 0, (12, 12, 3)),
    (lambda keras: keras.layers.Flatten(), (10, 10, 3), 0, 0, (300,)),
    (lambda keras: keras.layers.Reshape((30, 10)), (10, 10, 3), 0, 0, (30, 10)),
    (lambda keras: keras.layers.Dropout(0.5), (10, 10, 3), 0, 0, (10, 10, 3)),
    (lambda keras: keras.layers.Rescaling(1 / 255), (10, 10, 3), 0, 0, (10, 10, 3)),
    (lambda keras: keras.layers.Softmax(), (10,), 0, 0, (10,)),
    (lambda keras: keras.layers.Activation("relu"), (10, 10, 3), 0, 0, (10, 10, 3)),
    # adapted Normalization: mean and variance per channel plus a scalar count
    (lambda keras: adapted(keras.layers.Normalization()), (10, 10, 3), 7, 0, (10, 10, 3)),
    # statistics over axes 1 and 2 (height, width): 2 * 10 * 10 + 1
    (lambda keras: adapted(keras.layers.Normalization(axis=(1, 2))), (10, 10, 3), 201, 0, (10, 10, 3)),
    (lambda keras: keras.layers.Normalization(mean=0.5, variance=4.0), (10, 10, 3), 0, 0, (10, 10, 3)),
]


def adapted(layer):
    layer.adapt(np.random.default_rng(0).random((4, 10, 10, 3)).astype("float32"))
    return layer
