"""Small model builders and helpers shared by the tests (Keras 3 or tf_keras, passed in)."""
from __future__ import annotations

import numpy as np

from keras_cprune.zoo import vgg


def randomize(model, seed: int = 0, scale: float = 0.2) -> None:
    """Give every weight small random values (BatchNorm variances positive) so pruning has work."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for weight in layer.weights:
            shape = tuple(weight.shape)
            name = weight.name.rsplit("/", 1)[-1].split(":")[0]
            if name == "moving_variance":
                values.append(rng.uniform(0.5, 1.5, shape))
            elif name == "gamma":
                values.append(rng.uniform(0.5, 1.5, shape))
            else:
                values.append(rng.normal(0, scale, shape))
        if values:
            layer.set_weights([v.astype("float32") for v in values])


def residual(keras, input_shape=(16, 16, 3)):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    for i in range(2):
        y = keras.layers.Conv2D(8, 3, padding="same", name=f"r{i}a")(x)
        y = keras.layers.BatchNormalization(name=f"r{i}bn")(y)
        y = keras.layers.ReLU(name=f"r{i}relu")(y)
        y = keras.layers.Conv2D(8, 3, padding="same", name=f"r{i}b")(y)
        x = keras.layers.Add(name=f"add{i}")([x, y])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="logits")(x), name="residual")


def inverted_residual(keras, input_shape=(16, 16, 3)):
    """MobileNetV2-style block with a squeeze-excite multiply."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="stem")(inputs)
    y = keras.layers.Conv2D(24, 1, name="expand")(x)
    y = keras.layers.ReLU(6.0, name="expand_relu")(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(y)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(y)
    s = keras.layers.Conv2D(4, 1, activation="relu", name="se_reduce")(s)
    s = keras.layers.Conv2D(24, 1, activation="sigmoid", name="se_expand")(s)
    y = keras.layers.Multiply(name="se_mul")([y, s])
    y = keras.layers.Conv2D(8, 1, name="project")(y)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.SeparableConv2D(12, 3, padding="same", depth_multiplier=2, name="sep")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x), name="inverted_residual")


def concat_branches(keras, input_shape=(16, 16, 3)):
    inputs = keras.Input(input_shape)
    a = keras.layers.Conv2D(6, 1, name="a")(inputs)
    b = keras.layers.Conv2D(10, 3, padding="same", name="b")(inputs)
    c = keras.layers.Concatenate(name="cat")([a, b])
    c = keras.layers.Conv2D(12, 3, strides=2, name="after_cat")(c)
    d = keras.layers.Conv2D(12, 1, name="d")(c)
    e = keras.layers.Concatenate(name="cat2")([c, d])
    e = keras.layers.Flatten(name="flatten")(e)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(e), name="concat_branches")


ARCHITECTURES = {"vgg": vgg, "residual": residual, "inverted_residual": inverted_residual,
                 "concat_branches": concat_branches}


def random_model(keras, seed: int):
    """A random Functional CNN from the supported layer set (chains, residual, concat, depthwise)."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((12, 12, int(rng.integers(1, 4))))
    x = keras.layers.Conv2D(int(rng.integers(4, 12)), 3, padding="same", name="c0")(inputs)
    for i in range(int(rng.integers(2, 5))):
        kind = rng.choice(["conv", "residual", "concat", "depthwise", "se", "sep", "pool"])
        width = int(x.shape[-1])
        if kind == "conv":
            x = keras.layers.Conv2D(int(rng.integers(3, 12)), 3, padding="same", name=f"b{i}conv")(x)
            x = keras.layers.BatchNormalization(name=f"b{i}bn")(x)
        elif kind == "residual":
            y = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"b{i}res")(x)
            x = keras.layers.Add(name=f"b{i}add")([x, y])
        elif kind == "concat":
            y = keras.layers.Conv2D(int(rng.integers(2, 8)), 1, name=f"b{i}branch")(x)
            x = keras.layers.Concatenate(name=f"b{i}cat")([x, y])
        elif kind == "depthwise":
            x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=int(rng.integers(1, 3)),
                                             name=f"b{i}dw")(x)
        elif kind == "se":
            s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"b{i}sepool")(x)
            s = keras.layers.Conv2D(width, 1, activation="sigmoid", name=f"b{i}sefc")(s)
            x = keras.layers.Multiply(name=f"b{i}semul")([x, s])
        elif kind == "sep":
            x = keras.layers.SeparableConv2D(int(rng.integers(3, 10)), 3, padding="same", name=f"b{i}sep")(x)
        else:
            x = keras.layers.MaxPooling2D(2, padding="same", name=f"b{i}pool")(x)
        x = keras.layers.Activation("relu", name=f"b{i}act")(x)
    if rng.random() < 0.5:
        x = keras.layers.Flatten(name="flatten")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(int(rng.integers(4, 16)), activation="relu", name="fc")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name=f"random{seed}")


def random_branched_model(keras, seed: int):
    """A random residual/concat CNN whose branches are *created* in a random order, with widths
    drawn from {4, 8} so tensor sizes tie: 1x1 strided shortcuts, three-way adds and
    concatenations of branches of different depth (the graphs the converter orders its own way)."""
    rng = np.random.default_rng(seed)
    layers, count = keras.layers, iter(range(10 ** 6))
    name = lambda kind: f"{kind}{next(count)}"  # noqa: E731

    def conv(x, width, kernel=3, strides=1, act=None):
        return layers.Conv2D(width, kernel, strides=strides, padding="same", activation=act, name=name("c"))(x)

    def chain(x, width, depth, strides=1):
        def build():
            y = x
            for d in range(depth):
                y = conv(y, width, int(rng.choice([1, 3])), strides if d == 0 else 1, rng.choice([None, "relu"]))
            return y
        return build

    inputs = keras.Input((int(rng.choice([8, 12, 16])), int(rng.choice([8, 12, 16])), int(rng.integers(1, 4))))
    x = conv(inputs, int(rng.choice([4, 8])), act="relu")
    for _ in range(int(rng.integers(2, 5))):
        kind = rng.choice(["shortcut", "add3", "concat", "conv"])
        width = int(rng.choice([4, 8]))
        strides = int(rng.choice([1, 2])) if min(x.shape[1:3]) >= 4 else 1
        if kind == "conv":
            x = conv(x, width, strides=strides, act="relu")
            continue
        if kind == "shortcut":
            builders = [chain(x, width, 2, strides), chain(x, width, 1, strides)]
        elif kind == "add3":
            builders = [chain(x, width, int(rng.integers(1, 3)), strides) for _ in range(3)]
        else:
            builders = [chain(x, int(rng.choice([4, 8])), int(rng.integers(1, 3)), strides) for _ in range(2)]
            if strides == 1 and rng.random() < 0.5:
                builders.append(lambda: x)  # the block input itself (depth 0)
        made = [None] * len(builders)
        for i in rng.permutation(len(builders)):  # creation order
            made[i] = builders[i]()
        merged = [made[i] for i in rng.permutation(len(made))]  # operand order
        x = (layers.Add if kind != "concat" else layers.Concatenate)(name=name("m"))(merged)
        if rng.random() < 0.5:
            x = layers.ReLU(name=name("r"))(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x) if rng.random() < 0.5 else layers.Flatten(name="flat")(x)
    return keras.Model(inputs, layers.Dense(int(rng.integers(3, 8)), name="logits")(x), name=f"branched{seed}")


def random_decoder_model(keras, seed: int):
    """A random encoder-decoder (U-Net-like) CNN: encoder convs downsampled by pooling or strided
    convs, a decoder upsampling by UpSampling2D (nearest or bilinear) or Conv2DTranspose (with or
    without bias and ReLU), skip connections merged by Concatenate or Add, BatchNorm and ReLU
    here and there; widths, depth and the creation and operand order of each merge are drawn."""
    rng = np.random.default_rng(seed)
    layers, count = keras.layers, iter(range(10 ** 6))
    name = lambda kind: f"{kind}{next(count)}"  # noqa: E731
    coin = lambda p=0.5: bool(rng.random() < p)  # noqa: E731

    def width():
        return int(rng.integers(2, 13))

    def block(x, out=None):
        """conv, then maybe BatchNorm, then ReLU fused, as a layer, or none."""
        relu = rng.choice(["fused", "layer", "none"])
        x = layers.Conv2D(out or width(), int(rng.choice([1, 3])), padding="same", name=name("conv"),
                          activation="relu" if relu == "fused" else None)(x)
        if coin(0.4):
            x = layers.BatchNormalization(name=name("bn"))(x)
        return layers.ReLU(name=name("relu"))(x) if relu == "layer" else x

    def down(x):
        kind = rng.choice(["max", "avg", "strided"])
        if kind == "strided":
            return layers.Conv2D(width(), 3, strides=2, padding="same", name=name("down"),
                                 activation=rng.choice([None, "relu"]))(x)
        return (layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D)(2, name=name("pool"))(x)

    def up(x, out):
        kind = rng.choice(["nearest", "bilinear", "transpose"], p=[0.2, 0.4, 0.4])  # nearest: TILE, not in TFLM
        if kind == "transpose":
            x = layers.Conv2DTranspose(out, int(rng.choice([2, 3])), strides=2, padding="same", name=name("tconv"),
                                       use_bias=coin(0.7), activation=rng.choice([None, "relu"]))(x)
            if coin(0.4):
                x = layers.BatchNormalization(name=name("bn"))(x)
            if coin(0.3):
                x = layers.ReLU(name=name("relu"))(x)
        else:
            x = layers.UpSampling2D(2, interpolation=kind, name=name("up"))(x)
            if coin():
                x = layers.Conv2DTranspose(out, 3, padding="same", name=name("tconv"), use_bias=coin(0.7),
                                           activation=rng.choice([None, "relu"]))(x)
        return x if int(x.shape[-1]) == out else block(x, out)

    size = int(rng.choice([8, 12, 16]))
    depth = int(rng.integers(1, 3 if size == 12 else 4))
    inputs = keras.Input((size, size, int(rng.integers(1, 4))), name="image")
    x, skips = block(inputs), []
    for _ in range(depth):
        for _ in range(int(rng.integers(1, 3))):
            x = block(x)
        skips.append(x)
        x = down(x)
    x = block(x)
    for skip in reversed(skips):
        merge = rng.choice(["concat", "add"])
        out = int(skip.shape[-1]) if merge == "add" else width()
        builders = [lambda: up(x, out), lambda: skip if coin() or merge == "add" else block(skip)]
        made = [None, None]
        for i in rng.permutation(2):  # creation order
            made[i] = builders[i]()
        operands = [made[i] for i in rng.permutation(2)]
        x = (layers.Add if merge == "add" else layers.Concatenate)(name=name(merge))(operands)
        if coin(0.3):
            x = layers.BatchNormalization(name=name("bn"))(x)
        if coin():
            x = layers.ReLU(name=name("relu"))(x)
        x = block(x)
    outputs = layers.Conv2D(int(rng.integers(1, 4)), 1, name="head")(x)
    return keras.Model(inputs, outputs, name=f"decoder{seed}")
