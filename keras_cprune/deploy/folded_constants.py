"""What the converter folds out of a layer's constants: an all-zero bias or BatchNorm offset (dropped,
which changes the ops, not only the constants) and a BatchNorm scale equal on every channel."""
from __future__ import annotations

import numpy as np


def _values(weight) -> np.ndarray:
    return np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight, dtype=np.float32)


def keeps_bias(layer, assume_trained: bool) -> bool:
    """The converter drops an all-zero Dense or transposed-conv bias; a trained one never is."""
    bias = getattr(layer, "bias", None)
    if bias is None or assume_trained:
        return bias is not None
    return bool(np.any(_values(bias)))


def keeps_offset(layer, assume_trained: bool) -> bool:
    """The converter drops the ADD of a BatchNorm whose offset ``beta - mean * gamma / sqrt(var + eps)``
    is all zero (a fresh layer's); a trained one never is."""
    if assume_trained:
        return True
    scale = _values(layer.gamma) if getattr(layer, "gamma", None) is not None else 1.0
    offset = _values(layer.moving_mean) * scale / np.sqrt(_values(layer.moving_variance) + layer.epsilon)
    if getattr(layer, "beta", None) is not None:
        offset = _values(layer.beta) - offset
    return bool(np.any(offset))


def uniform_scale(layer) -> float | None:
    """A BatchNorm's ``gamma / sqrt(var + eps)`` when all its channels have the same, else None."""
    scale = 1.0 / np.sqrt(_values(layer.moving_variance) + np.float32(layer.epsilon))
    if getattr(layer, "gamma", None) is not None:
        scale = scale * _values(layer.gamma)
    return float(scale[0]) if scale.size and np.all(scale == scale[0]) else None
