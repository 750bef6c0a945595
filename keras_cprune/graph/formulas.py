"""Parameter and MAC formulas per layer type, from a layer's config and its input/output shapes
(batch axis excluded), so they also price hypothetical pruned shapes. `keras_cprune.graph.layers` puts
them in its table."""
from __future__ import annotations

import math
from typing import Callable

Shape = tuple


def prod(values) -> int:
    return math.prod(int(v) for v in values)


def kernel(cfg: dict) -> int:
    return prod(cfg["kernel_size"])


def bias(cfg: dict, n: int) -> int:
    return n if cfg.get("use_bias", True) else 0


def conv_params(cfg, i, o):
    return kernel(cfg) * i[0][-1] // cfg.get("groups", 1) * o[0][-1] + bias(cfg, o[0][-1])


def conv_macs(cfg, i, o):
    return prod(o[0][:-1]) * o[0][-1] * kernel(cfg) * i[0][-1] // cfg.get("groups", 1)


def tconv_params(cfg, i, o):
    return kernel(cfg) * i[0][-1] * o[0][-1] + bias(cfg, o[0][-1])


def tconv_macs(cfg, i, o):
    return prod(i[0][:-1]) * i[0][-1] * kernel(cfg) * o[0][-1]


def dw_params(cfg, i, o):
    return kernel(cfg) * o[0][-1] + bias(cfg, o[0][-1])


def dw_macs(cfg, i, o):
    return prod(o[0][:-1]) * o[0][-1] * kernel(cfg)


def sep_params(cfg, i, o):
    mid = i[0][-1] * cfg.get("depth_multiplier", 1)
    return kernel(cfg) * mid + mid * o[0][-1] + bias(cfg, o[0][-1])


def sep_macs(cfg, i, o):
    mid = i[0][-1] * cfg.get("depth_multiplier", 1)
    return prod(o[0][:-1]) * mid * (kernel(cfg) + o[0][-1])


def dense_params(cfg, i, o):
    return i[0][-1] * o[0][-1] + bias(cfg, o[0][-1])


def dense_macs(cfg, i, o):
    return prod(i[0][:-1]) * i[0][-1] * o[0][-1]


def bn_params(cfg, i, o):
    return o[0][-1] * (2 + bool(cfg.get("center", True)) + bool(cfg.get("scale", True)))


def no_params(cfg, i, o):
    return 0


def norm_params(cfg, i, o):
    """Normalization: adapted mean and variance over the ``axis`` dims, plus a scalar count;
    none when ``mean``/``variance`` were given as constants."""
    if cfg.get("input_mean") is not None:
        return 0
    axes = cfg.get("axis") or ()
    axes = (axes,) if isinstance(axes, int) else axes
    return 2 * prod(i[0][axis(a, i[0])] for a in axes) + 1


def rnn_biases(gates: int) -> Callable[[dict], int]:
    """Bias elements of a recurrent layer: one per gate and unit; a GRU with ``reset_after`` has a
    second (recurrent) bias row, shape (2, 3*units)."""
    def biases(cfg: dict) -> int:
        rows = 2 if cfg.get("reset_after") else 1
        return gates * cfg["units"] * rows if cfg.get("use_bias", True) else 0

    return biases


def axis(axis, shape: Shape) -> int:
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if isinstance(axis, (list, tuple)):
        return -99
    return axis - 1 if axis > 0 else len(shape) + axis  # config axes count the batch axis
