"""The framework-free graph TFLM's allocator sees: tensors and operators in run order.

A flatbuffer (`flatbuffer.graph_from_tflite`) or a Keras graph lowered as the converter lowers it
(keras_cprune) both produce a `MicroGraph`; `planner.predict_arena` replays TFLM on it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TensorSpec:
    """A tensor: ``shape``, bytes per element, constant (weights in flash) or not, and the
    number of quantization scales it carries (0: no quantization parameters)."""
    shape: tuple
    itemsize: int = 1
    constant: bool = False
    quant_channels: int = 1
    variable: bool = False
    name: str = field(default="", compare=False)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.itemsize


@dataclass(frozen=True)
class OpSpec:
    """One operator: TFLite builtin name (``"CONV_2D"``) and tensor indices (-1: omitted)."""
    op: str
    inputs: tuple
    outputs: tuple


@dataclass(frozen=True)
class MicroGraph:
    """What the TFLM allocator sees of a single-subgraph model: tensors and ops in run order."""
    tensors: tuple
    ops: tuple
    inputs: tuple
    outputs: tuple
