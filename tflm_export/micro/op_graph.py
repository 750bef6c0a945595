"""The framework-free graph TFLM's allocator sees: tensors and operators in run order.

A flatbuffer (`flatbuffer.graph_from_tflite`) or a Keras graph lowered as the converter lowers it
(keras_cprune) both produce a `MicroGraph`; `planner.predict_arena` replays TFLM on it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MicroTensor:
    """A tensor as TFLM's allocator sees it.

    Attributes:
        shape: its shape, batch included.
        itemsize: bytes per element. Default 1 (int8).
        constant: True for data in the flatbuffer (weights, in flash), not in the arena.
        quant_channels: quantization scales it carries (0: no quantization parameters).
        variable: True for a variable tensor (e.g. a recurrent state), persistent in the arena.
        name: the tensor's name, for messages (not compared).
    """
    shape: tuple
    itemsize: int = 1
    constant: bool = False
    quant_channels: int = 1
    variable: bool = False
    name: str = field(default="", compare=False)

    @property
    def nbytes(self) -> int:
        """Bytes of its data: elements x ``itemsize``."""
        return math.prod(self.shape) * self.itemsize


@dataclass(frozen=True)
class Window:
    """The sliding window of a convolution or pooling op, from its builtin options.

    Attributes:
        stride: (height, width) steps.
        dilation: (height, width) dilation factors.
        filter: (height, width) of a pooling window; convolutions read theirs from the filter tensor.
    """
    stride: tuple = (1, 1)
    dilation: tuple = (1, 1)
    filter: tuple = ()


def padding(size: int, out: int, filt: int, stride: int, dilation: int) -> int:
    """TFLite's padding before the data along one axis (``ComputePaddingWithOffset``): SAME and
    VALID differ only through the output size, so the sizes decide it."""
    return max((out - 1) * stride + (filt - 1) * dilation + 1 - size, 0) // 2


@dataclass(frozen=True)
class MicroOp:
    """One operator.

    Attributes:
        op: the TFLite builtin name, e.g. ``"CONV_2D"``.
        inputs: indices into `MicroGraph.tensors` (-1: an omitted optional input).
        outputs: indices into `MicroGraph.tensors`.
        window: the `Window` of a convolution or pooling op, None where unknown or not applicable
            (kernels whose scratch buffers depend on it are then approximated).
    """
    op: str
    inputs: tuple
    outputs: tuple
    window: Window | None = None


@dataclass(frozen=True)
class MicroGraph:
    """What the TFLM allocator sees of a single-subgraph model: tensors and ops in run order.

    Attributes:
        tensors: the `MicroTensor` of every tensor.
        ops: the `MicroOp` of every operator, in run order.
        inputs: indices of the model's input tensors.
        outputs: indices of the model's output tensors.
    """
    tensors: tuple
    ops: tuple
    inputs: tuple
    outputs: tuple
