"""What each TFLM kernel puts in the arena, per build: the reference kernels on the PyPI runtime
(x86-64) and on a 32-bit Cortex-M build, and the CMSIS-NN kernels per core family.

A `Kernel` holds one op's arena use: the builtin options struct its flatbuffer parser allocates,
the OpData its Init allocates, the persistent buffers and scratch buffer requests of its Prepare,
and the tensors Prepare copies to temp ``TfLiteTensor`` s. Sizes of the 32-bit builds are
``sizeof``/``alignof`` read by the compiler from the TFLM sources (scripts/cortexm/struct_sizes.py);
CMSIS-NN scratch sizes follow each kernel's ``arm_*_get_buffer_size`` rule for the core family
(``none``: Cortex-M0+, ``dsp``: Cortex-M4/M7, ``mve``: Cortex-M55), as GCC compiles them.
"""
from __future__ import annotations

import math
from functools import lru_cache
from dataclasses import dataclass, replace

from tflm_export.micro.op_graph import padding

__all__ = ["Kernel", "kernel_table", "KERNEL_SETS"]

KERNEL_SETS = ("reference", "cmsis_nn")


def _nothing(graph, op):
    return ()


@dataclass(frozen=True)
class Kernel:
    """Arena use of one kernel: builtin options struct (size, align) its flatbuffer parser
    allocates, OpData bytes from Init, persistent buffers from Prepare, scratch buffer requests
    (bytes), and the tensors Prepare copies to temp ``TfLiteTensor`` s (default: all).
    ``late``: Prepare allocates its persistent buffers after all its temp tensors, and
    ``AllocatePersistentBuffer`` checks the tail against ``head_``, not ``temp_``: the bytes
    the buffers are written with may overwrite temp tensor bytes, except those read later.
    ``needs_window``: the scratch rule reads the op's `Window`."""
    params: tuple = None
    op_data: int = 0
    persistent: object = _nothing
    scratch: object = _nothing
    temp: object = None
    late: bool = False
    needs_window: bool = False


def _t(g, op, k, io="inputs"):
    return g.tensors[getattr(op, io)[k]]


def _per_channel(dim):  # int32 multiplier + shift per output channel of the filter
    return lambda g, op: (4 * _t(g, op, 1).shape[dim],) * 2


def _fc_arrays(g, op):  # only with per-channel quantized weights
    return (4 * _t(g, op, 1).quant_channels,) * 2 if _t(g, op, 1).quant_channels > 1 else ()


def _out_dims(g, op):  # output dims moved to the tail: TfLiteIntArray of the rank
    return (4 + 4 * len(_t(g, op, 0, "outputs").shape),)


def _mean_scratch(g, op):  # int32 accumulator (int8/16 only), input iterator, resolved axes
    inp, axis, out = _t(g, op, 0), _t(g, op, 1), _t(g, op, 0, "outputs")
    return ((4 * math.prod(out.shape),) if inp.itemsize <= 2 else ()) + (
        4 * len(inp.shape), 4 * math.prod(axis.shape))


def _lstm_scratch(g, op):  # four cell-state-sized buffers (int16 for int8): gates and cell update
    return (_t(g, op, 19).nbytes,) * 4


def _conv_temp(op):  # ConvPrepare: out, in, filter; CalculateOpDataConv: in, filter, bias, out
    (i, f, *b), o = op.inputs, op.outputs[0]
    return (o, i, f, i, f, b[0] if b else -1, o)


def _no_prepare(op):
    return ()


def _host_kernels() -> dict:
    """The reference kernels of the PyPI runtime (x86-64), sizes read from its parsers and Init."""
    pool = Kernel((40, 4), 32)
    return {
        "CONV_2D": Kernel((28, 4), 80, _per_channel(0), temp=_conv_temp),
        "DEPTHWISE_CONV_2D": Kernel((28, 4), 80, _per_channel(3), temp=_conv_temp),
        "FULLY_CONNECTED": Kernel((32, 8), 72, _fc_arrays, late=True),
        "TRANSPOSE_CONV": Kernel((20, 4), 88, _per_channel(0),
                                 lambda g, op: (4 * math.prod(_t(g, op, 0, "outputs").shape),)),
        "MAX_POOL_2D": pool, "AVERAGE_POOL_2D": pool,
        "ADD": Kernel((8, 4), 60), "SUB": Kernel((8, 4), 52), "MUL": Kernel((4, 4), 36),
        "CONCATENATION": Kernel((8, 4), 80),
        "MEAN": Kernel((1, 1), 44, scratch=_mean_scratch,  # helper: in, out, axis; then
                       temp=lambda op: (op.inputs[0], op.outputs[0], op.inputs[1],  # PrepareSimple
                                        op.inputs[0], op.inputs[1], op.outputs[0])),
        "RESHAPE": Kernel((36, 4), 0, lambda g, op: _out_dims(g, op)  # only for a -1 dim
                          if -1 in _t(g, op, 0, "outputs").shape else ()),
        "SQUEEZE": Kernel((36, 4)), "EXPAND_DIMS": Kernel(), "TRANSPOSE": Kernel(),
        "SHAPE": Kernel((4, 4)), "PACK": Kernel((8, 4), temp=_no_prepare),
        "UNPACK": Kernel((8, 4), temp=_no_prepare),
        "STRIDED_SLICE": Kernel((24, 4), 84), "SOFTMAX": Kernel((4, 4), 80),
        "QUANTIZE": Kernel(None, 32), "DEQUANTIZE": Kernel(None, 32),
        "RELU": Kernel(None, 28), "RELU6": Kernel(None, 8), "LEAKY_RELU": Kernel((4, 4), 24),
        "LOGISTIC": Kernel(None, 16), "TANH": Kernel(None, 16), "HARD_SWISH": Kernel(None, 20),
        "PRELU": Kernel(None, 28), "PAD": Kernel(None, 56), "PADV2": Kernel(None, 56),
        "MAXIMUM": Kernel(temp=_no_prepare), "MINIMUM": Kernel(temp=_no_prepare),
        "RESIZE_NEAREST_NEIGHBOR": Kernel((2, 1)), "RESIZE_BILINEAR": Kernel((2, 1)),
        "SPACE_TO_DEPTH": Kernel((4, 4), 0, _out_dims), "DEPTH_TO_SPACE": Kernel((4, 4), 0, _out_dims),
        # OpDataLSTM: size and cell-state info, 4 gates x 2 FullyConnectedParams, 3 ArithmeticParams
        "UNIDIRECTIONAL_SEQUENCE_LSTM": Kernel((16, 4), 688, scratch=_lstm_scratch),
    }


# 32-bit Cortex-M build (arm-none-eabi-g++ 12, TF_LITE_STATIC_MEMORY; enums are short): builtin
# options struct (sizeof, alignof) and the OpData of each reference kernel's Init, where they differ
# from x86-64.
_ARM_PARAMS = {"FULLY_CONNECTED": (5, 1), "TRANSPOSE_CONV": (16, 4), "ADD": (2, 1), "SUB": (2, 1),
               "MUL": (1, 1), "SHAPE": (1, 1)}
_ARM_OP_DATA = {"CONV_2D": 56, "DEPTHWISE_CONV_2D": 56, "FULLY_CONNECTED": 48, "TRANSPOSE_CONV": 72,
                "CONCATENATION": 24, "SOFTMAX": 56}


def _arm_reference() -> dict:
    table = _host_kernels()
    for op, kernel in table.items():
        table[op] = replace(kernel, params=_ARM_PARAMS.get(op, kernel.params),
                            op_data=_ARM_OP_DATA.get(op, kernel.op_data))
    return table


# --------------------------------------------------------------------------- CMSIS-NN
# Rules of CMSIS-NN 4ab83cc3 (the commit TFLM 90b983c2 pins), Source/*/arm_*_get_buffer_sizes_s8.c,
# as arm-none-eabi-gcc compiles them (armclang-only branches off), with TFLM's cmsis_nn/*.cc Prepare.
def _io(g, op, k_in=0):
    """(input NHWC, filter shape, output NHWC) of a convolution-like op."""
    return _t(g, op, k_in).shape, _t(g, op, 1).shape, _t(g, op, 0, "outputs").shape


def _pads(op, inp, out, kh, kw):
    w = op.window
    return (padding(inp[1], out[1], kh, w.stride[0], w.dilation[0]),
            padding(inp[2], out[2], kw, w.stride[1], w.dilation[1]))


def _cdiv(a, b):  # C integer division (truncates toward zero)
    return abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)


def _im2col(family, cin, kh, kw):
    """``arm_convolve_s8_get_buffer_size``: 2 int16 columns (4 x align4) or MVE's 4 x align16."""
    cols = kh * kw * cin
    return 4 * 16 * -(-cols // 16) if family == "mve" else 4 * 4 * -(-cols // 4)


def _conv_1_x_n_mve(in_w, cin, kw, out_w, stride_w, pad_w):
    """``arm_convolve_1_x_n_s8_get_buffer_size_mve``."""
    total = (out_w - 1) * stride_w + kw - in_w
    asym = total - 2 * _cdiv(total, 2)
    right = max(1, _cdiv(pad_w + asym + stride_w - 1, stride_w)) if pad_w + asym else 0
    left = max(1, _cdiv(pad_w + stride_w - 1, stride_w)) if pad_w else 0
    if right + max(out_w - right - left, 0) + left != out_w:
        return _im2col("mve", cin, 1, kw)
    return max(kw * cin + pad_w * cin, (kw - 1) * cin + (right * cin if asym else pad_w * cin))


def _conv_bytes(family, inp, kh, kw, cf, out, stride, dilation, pads):
    """``arm_convolve_wrapper_s8_get_buffer_size``: 1x1 (no padding, no dilation) needs none
    with GCC; 1xN differs on MVE only."""
    cin = inp[3]
    if pads == (0, 0) and (kh, kw) == (1, 1) and dilation == (1, 1) and cin == cf:
        return 0
    if (family == "mve" and inp[1] == 1 and dilation[1] == 1 and kh == 1 and (stride[1] * cin) % 4 == 0
            and cin == cf):
        return _conv_1_x_n_mve(inp[2], cin, kw, out[2], stride[1], pads[1])
    return _im2col(family, cin, kh, kw)


def _drop_empty(sizes):
    return tuple(s for s in sizes if s > 0)  # TFLM requests a scratch buffer only when buf_size > 0


def _conv_scratch(family):
    def rule(g, op):
        inp, (_, kh, kw, cf), out = _io(g, op)
        w = op.window
        return _drop_empty((_conv_bytes(family, inp, kh, kw, cf, out, w.stride, w.dilation,
                                        _pads(op, inp, out, kh, kw)),))
    return rule


def _depthwise_scratch(family):
    """``arm_depthwise_conv_wrapper_s8_get_buffer_size``: DSP's "opt" path (channel multiplier 1)
    im2cols Cin x Kh x Kw int16 but for 3x3 with padding <= 1; MVE's needs 4 x 124 per tap; an
    MVE depthwise of one input channel runs as a convolution."""
    def rule(g, op):
        inp, (_, kh, kw, cout), out = _io(g, op)
        w = op.window
        pads = _pads(op, inp, out, kh, kw)
        if family == "mve" and inp[3] == 1 and cout > 1:
            return _drop_empty((_conv_bytes("mve", inp, kh, kw, 1, out, w.stride, w.dilation, pads)
                                + cout * kh * kw,))
        if inp[3] != cout or inp[0] != 1 or w.dilation != (1, 1) or family == "none":
            return ()
        if family == "mve":
            return (4 * 124 * kh * kw,)
        return () if (kh, kw) == (3, 3) and max(pads) <= 1 else (2 * inp[3] * kh * kw,)
    return rule


def _fc_cmsis(family):
    """FULLY_CONNECTED: per-channel arrays, then MVE's kernel sums (Cout int32, persistent with
    constant weights); an output of rank > 2 with Cin % 4 == 0 runs as a 1x1 convolution and
    requests per-channel arrays as scratch when the weights are per-tensor."""
    def conv_path(g, op):
        return len(_t(g, op, 0, "outputs").shape) > 2 and _t(g, op, 1).shape[-1] % 4 == 0

    def persistent(g, op):
        sums = (4 * _t(g, op, 0, "outputs").shape[-1],) if family == "mve" and not conv_path(g, op) else ()
        return _fc_arrays(g, op) + sums

    def scratch(g, op):
        per_tensor = _t(g, op, 1).quant_channels <= 1
        return (8 * _t(g, op, 0, "outputs").shape[-1],) if conv_path(g, op) and per_tensor else ()
    return persistent, scratch


def _transpose_conv_scratch(family):
    """Two requests, even of 0 bytes: im2col (or col2im) and the reversed filter."""
    def rule(g, op):
        cout, kh, kw, cin = _t(g, op, 1).shape
        sh, sw = op.window.stride
        if sw <= 2 and sh <= 2 and cin > 16:
            return (_im2col(family, cin, kh, kw), cin * kh * kw * cout)
        in_w = _t(g, op, 2).shape[2]
        return (((in_w - 1) * sw + max(kw, sh)) * _t(g, op, 0, "outputs").shape[3] * max(kh, sh) * 4, 0)
    return rule


def _pool_temp(op):
    return (op.inputs[0], op.outputs[0]) * 2  # AveragePrepare: PoolingPrepare's pair, then its own


def cmsis_nn_kernels(family: str) -> dict:
    """The CMSIS-NN build's kernels for a core family: its OpData, Prepare and scratch rules for
    the ops CMSIS-NN implements, the 32-bit reference kernels for the rest."""
    table = _arm_reference()
    fc_persistent, fc_scratch = _fc_cmsis(family)
    avg_scratch = (lambda g, op: (4 * _t(g, op, 0).shape[3],)) if family == "dsp" else _nothing
    table.update(
        CONV_2D=replace(table["CONV_2D"], op_data=60, scratch=_conv_scratch(family), needs_window=True),
        DEPTHWISE_CONV_2D=replace(table["DEPTHWISE_CONV_2D"], op_data=60, scratch=_depthwise_scratch(family),
                                  needs_window=True),
        FULLY_CONNECTED=replace(table["FULLY_CONNECTED"], op_data=72, persistent=fc_persistent, scratch=fc_scratch),
        MAX_POOL_2D=replace(table["MAX_POOL_2D"], op_data=36),
        AVERAGE_POOL_2D=replace(table["AVERAGE_POOL_2D"], op_data=36, scratch=avg_scratch, temp=_pool_temp),
        SOFTMAX=replace(table["SOFTMAX"], op_data=64),
        TRANSPOSE_CONV=replace(table["TRANSPOSE_CONV"], op_data=76, scratch=_transpose_conv_scratch(family),
                               needs_window=True),
        # int8 LSTM: CMSIS_NN_PortOpData's 8 int32 kernel sums of the hidden size, 3 cell-state buffers
        UNIDIRECTIONAL_SEQUENCE_LSTM=replace(
            table["UNIDIRECTIONAL_SEQUENCE_LSTM"], op_data=912,
            persistent=lambda g, op: (4 * _t(g, op, 19).shape[-1],) * 8,
            scratch=lambda g, op: (_t(g, op, 19).nbytes,) * 3),
    )
    return table


@lru_cache(maxsize=None)
def kernel_table(build: str, kernels: str, family: str = "none") -> dict:
    """{op name: `Kernel`} of a TFLM build: ``build`` "host" (PyPI x86-64) or "arm32";
    ``kernels`` "reference" or "cmsis_nn" (arm32 only), for a core ``family``."""
    if build == "host":
        return _host_kernels()
    return _arm_reference() if kernels == "reference" else cmsis_nn_kernels(family)
