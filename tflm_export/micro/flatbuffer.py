"""What tflm_export needs to know about a TFLite flatbuffer: ops, I/O tensors, MACs, float ops.

Read with the schema bindings the ``tflite-micro`` wheel ships (lazy accessors, no TensorFlow).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass

from tflm_export.errors import ModelError, ModelFileError
from tflm_export.micro.op_graph import Window, MicroGraph, MicroOp, MicroTensor

# A quantization scale below this means calibration saw an (almost) constant tensor, e.g. the
# all-zero logits of an untrained model; TFLM's SOFTMAX aborts on such an input scale.
TINY_SCALE = 1e-6
_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}  # float I/O conversion, allowed at the model's edges


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


def _enum_names(enum) -> dict:
    return {value: name for name, value in vars(enum).items() if not name.startswith("_")}


@dataclass(frozen=True)
class TensorInfo:
    """An input or output tensor of a flatbuffer.

    Attributes:
        name: the tensor's name in the flatbuffer.
        shape: its shape, batch included, e.g. ``(1, 28, 28, 1)``.
        dtype: numpy dtype name: ``"int8"``, ``"uint8"``, ``"float32"``...
        scale: quantization scale (real value = scale * (q - zero_point)); None for float tensors.
        zero_point: quantization zero point; None for float tensors.

    Example:

    ```python
    tensor = tflm_export.read_model(tflite).inputs[0]
    q = np.round(x / tensor.scale + tensor.zero_point).astype(tensor.dtype)
    ```
    """

    name: str
    shape: tuple
    dtype: str
    scale: float | None
    zero_point: int | None

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict."""
        return {**asdict(self), "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelInfo:
    """What `read_model` finds in the first subgraph of a flatbuffer.

    Attributes:
        ops: builtin op names in execution order, e.g. ``("CONV_2D", "MAX_POOL_2D", ...)``.
        inputs: a `TensorInfo` per model input.
        outputs: a `TensorInfo` per model output.
        macs: multiply-accumulates per invoke of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and
            TRANSPOSE_CONV (other ops count 0).
        float_ops: names of the ops computing on float tensors (QUANTIZE/DEQUANTIZE excepted).
        tiny_scales: ``(tensor name, scale, consumer op names)`` of the tensors whose scale is
            near zero (calibration saw a constant tensor).
        float_op_outputs: ``(op name, first output tensor name)`` of each op of ``float_ops``; the
            tensor names hold the Keras layers' (``model_1/dense_1/MatMul``).

    Example:

    ```python
    info = tflm_export.read_model(tflite)
    print(info.op_counts, info.macs, info.inputs[0].shape)
    ```
    """

    ops: tuple
    inputs: tuple
    outputs: tuple
    macs: int
    float_ops: tuple
    tiny_scales: tuple  # (tensor name, scale, consumer op names)
    float_op_outputs: tuple = ()

    @property
    def op_counts(self) -> dict:
        """``{op name: count}`` in order of first use."""
        return dict(Counter(self.ops))


def read_model(tflite_bytes: bytes) -> ModelInfo:
    """Read the ops, I/O tensors and MACs of a ``.tflite`` flatbuffer, without TensorFlow.

    Args:
        tflite_bytes: the flatbuffer (`bytes` or `bytearray`), e.g. from `convert`.

    Returns:
        A `ModelInfo` of its first subgraph.

    Raises:
        ModelFileError: ``tflite_bytes`` is not bytes, not a TFLite flatbuffer, or corrupt.

    Example:

    ```python
    info = tflm_export.read_model(open("model.tflite", "rb").read())
    print(info.op_counts, f"{info.macs:,} MACs", info.float_ops)
    ```
    """
    schema = _schema()
    if not isinstance(tflite_bytes, (bytes, bytearray)):
        raise ModelFileError(f"Expected the bytes of a .tflite flatbuffer, as returned by tflm_export.convert(). "
                             f"Received: {type(tflite_bytes).__name__} object.")
    if bytes(tflite_bytes[4:8]) != b"TFL3":
        raise ModelFileError(f"Expected a .tflite flatbuffer (file identifier 'TFL3' at offset 4). Received: "
                             f"{len(tflite_bytes)} bytes starting with {bytes(tflite_bytes[:8])!r}.")
    try:
        return _read(schema, schema.Model.GetRootAs(bytearray(tflite_bytes), 0))
    except Exception as exc:  # truncated or corrupt: the bindings raise IndexError, struct.error...
        raise ModelFileError(f"The .tflite flatbuffer ({len(tflite_bytes):,} bytes) is corrupt and cannot be parsed: "
                             f"{type(exc).__name__}: {exc}. Convert the model again.") from exc


def _has_data(buffer) -> bool:
    """Whether a tensor's buffer holds constant data (inline, or past the flatbuffer for >2 GB models)."""
    return buffer is not None and (buffer.DataLength() > 0 or buffer.Offset() > 1)


def _read(schema, model) -> ModelInfo:
    op_names, type_names = _enum_names(schema.BuiltinOperator), _enum_names(schema.TensorType)
    graph = model.Subgraphs(0)
    tensors = [graph.Tensors(i) for i in range(graph.TensorsLength())]
    shapes = [tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else () for t in tensors]

    def constant(index: int) -> bool:
        return _has_data(model.Buffers(tensors[index].Buffer()))

    def info(index: int) -> TensorInfo:
        tensor, quant = tensors[index], tensors[index].Quantization()
        scales = quant.ScaleAsNumpy() if quant is not None and quant.ScaleLength() else None
        return TensorInfo(tensor.Name().decode(), shapes[index], type_names[tensor.Type()].lower(),
                          None if scales is None else float(scales[0]),
                          None if scales is None else int(quant.ZeroPointAsNumpy()[0]))

    ops, macs, float_ops, consumers = [], 0, [], {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = op_names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ins = [int(t) for t in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(t) for t in op.OutputsAsNumpy()] if op.OutputsLength() else []
        ops.append(name)
        macs += _macs(name, [shapes[t] if t >= 0 else () for t in ins], [shapes[t] for t in outs])
        if name not in _BOUNDARY_OPS and any(t >= 0 and tensors[t].Type() in (schema.TensorType.FLOAT32,
                                             schema.TensorType.FLOAT16) and not constant(t) for t in ins + outs):
            float_ops.append((name, tensors[outs[0]].Name().decode() if outs else ""))
        for t in ins:
            consumers.setdefault(t, []).append(name)
    tiny = [(t.name, t.scale, tuple(consumers.get(i, ()))) for i, t in enumerate(map(info, range(len(tensors))))
            if t.scale is not None and t.scale < TINY_SCALE and not constant(i)]
    inputs = tuple(info(int(t)) for t in graph.InputsAsNumpy())
    outputs = tuple(info(int(t)) for t in graph.OutputsAsNumpy())
    return ModelInfo(tuple(ops), inputs, outputs, macs, tuple(sorted({op for op, _ in float_ops})), tuple(tiny),
                     tuple(float_ops))


def _macs(op: str, ins: list, outs: list) -> int:
    """Multiply-accumulates of one op from its tensor shapes (batch included)."""
    if op == "CONV_2D":  # filter (out_c, kh, kw, in_c)
        return math.prod(outs[0]) * math.prod(ins[1][1:])
    if op == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, out_c)
        return math.prod(outs[0]) * ins[1][1] * ins[1][2]
    if op == "FULLY_CONNECTED":  # weights (units, in)
        return math.prod(outs[0]) * ins[1][1]
    if op == "TRANSPOSE_CONV":  # (output_shape, filter (out_c, kh, kw, in_c), input)
        return math.prod(ins[2]) * math.prod(ins[1][:3])
    return 0


_ITEMSIZE = dict(FLOAT32=4, FLOAT16=2, INT32=4, UINT8=1, INT64=8, BOOL=1, INT16=2, COMPLEX64=8,
                 INT8=1, FLOAT64=8, COMPLEX128=16, UINT64=8, UINT32=4, UINT16=2, BFLOAT16=2)


_WINDOW_OPTIONS = {"CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
                   "TRANSPOSE_CONV": "TransposeConvOptions", "MAX_POOL_2D": "Pool2DOptions",
                   "AVERAGE_POOL_2D": "Pool2DOptions"}


def _window(schema, name: str, op) -> Window | None:
    """The `Window` an op's builtin options give, for convolutions and pooling."""
    if name not in _WINDOW_OPTIONS or op.BuiltinOptions() is None:
        return None
    options = getattr(schema, _WINDOW_OPTIONS[name])()
    options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
    dilation = ((options.DilationHFactor(), options.DilationWFactor())
                if hasattr(options, "DilationHFactor") else (1, 1))
    filt = (options.FilterHeight(), options.FilterWidth()) if hasattr(options, "FilterHeight") else ()
    return Window((options.StrideH(), options.StrideW()), dilation, filt)


def graph_from_tflite(tflite_bytes: bytes) -> MicroGraph:
    """Read a ``.tflite`` flatbuffer into a `MicroGraph` (weights are not copied).

    Args:
        tflite_bytes: the flatbuffer's bytes.

    Returns:
        A `MicroGraph` of its one subgraph.

    Raises:
        ModelFileError: not a readable TFLite flatbuffer.
        ModelError: the model has several subgraphs (IF/WHILE control flow).
    """
    schema = _schema()
    try:
        if bytes(tflite_bytes[4:8]) != b"TFL3":
            raise ValueError("no TFL3 file identifier at bytes 4-8")
        model = schema.Model.GetRootAs(bytearray(tflite_bytes), 0)
        count = model.SubgraphsLength()
        subgraph = model.Subgraphs(0)
    except Exception as exc:  # flatbuffers raises bare struct/index errors
        raise ModelFileError(f"Expected the bytes of a .tflite flatbuffer; could not read "
                             f"them ({len(tflite_bytes)} bytes): {exc}") from exc
    if count != 1:
        raise ModelError(f"Expected a model with one subgraph (no IF/WHILE control flow). "
                         f"Received: {count} subgraphs.")
    names, types = ({v: k for k, v in vars(enum).items() if not k.startswith("_")}
                    for enum in (schema.BuiltinOperator, schema.TensorType))

    def ints(table, name):  # an int vector field of a flatbuffer table, () when absent
        return tuple(int(x) for x in getattr(table, name + "AsNumpy")()) if getattr(
            table, name + "Length")() else ()

    tensors = []
    for t in (subgraph.Tensors(i) for i in range(subgraph.TensorsLength())):
        buffer, q = model.Buffers(t.Buffer()), t.Quantization()
        tensors.append(MicroTensor(  # quantization params count only with scales and zero points
            ints(t, "Shape"), _ITEMSIZE.get(types.get(t.Type()), 1),
            _has_data(buffer),
            q.ScaleLength() if q is not None and q.ZeroPointLength() else 0, bool(t.IsVariable()),
            (t.Name() or b"").decode()))
    ops = []
    for op in (subgraph.Operators(i) for i in range(subgraph.OperatorsLength())):
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = names.get(builtin, str(builtin))
        ops.append(MicroOp(name, ints(op, "Inputs"), ints(op, "Outputs"), _window(schema, name, op)))
    return MicroGraph(tuple(tensors), tuple(ops), ints(subgraph, "Inputs"), ints(subgraph, "Outputs"))
