"""Firmware sources in the layout of TFLite Micro's examples, written atomically into one folder:
``{name}_data.h/.cc`` (the flatbuffer as ``g_{name}[]``), ``{name}_settings.h`` (arena size, I/O
shapes and quantization), ``op_resolver.h`` (exactly the model's ops), ``{name}.tflite``, ``report.json``."""
from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from contextlib import contextmanager

from tflm_export.errors import ConversionError, CPruneError, ModelError, OutputPathError

from tflm_export.micro.flatbuffer import read_model
from tflm_export.micro.targets import resolve_target

# Builtin op -> tflite::MicroMutableOpResolver method (tensorflow/lite/micro/micro_mutable_op_resolver.h).
RESOLVER_METHODS = {op: "Add" + method for op, method in {
    "ABS": "Abs", "ADD": "Add", "ADD_N": "AddN", "ARG_MAX": "ArgMax", "ARG_MIN": "ArgMin",
    "AVERAGE_POOL_2D": "AveragePool2D", "BATCH_TO_SPACE_ND": "BatchToSpaceNd", "BROADCAST_TO": "BroadcastTo",
    "CAST": "Cast", "CEIL": "Ceil", "CONCATENATION": "Concatenation", "CONV_2D": "Conv2D", "COS": "Cos",
    "CUMSUM": "CumSum", "DEPTH_TO_SPACE": "DepthToSpace", "DEPTHWISE_CONV_2D": "DepthwiseConv2D",
    "DEQUANTIZE": "Dequantize", "DIV": "Div", "ELU": "Elu", "EQUAL": "Equal", "EXP": "Exp",
    "EXPAND_DIMS": "ExpandDims", "FILL": "Fill", "FLOOR": "Floor", "FLOOR_DIV": "FloorDiv", "FLOOR_MOD": "FloorMod",
    "FULLY_CONNECTED": "FullyConnected", "GATHER": "Gather", "GATHER_ND": "GatherNd", "GREATER": "Greater",
    "GREATER_EQUAL": "GreaterEqual", "HARD_SWISH": "HardSwish", "L2_NORMALIZATION": "L2Normalization",
    "L2_POOL_2D": "L2Pool2D", "LEAKY_RELU": "LeakyRelu", "LESS": "Less", "LESS_EQUAL": "LessEqual", "LOG": "Log",
    "LOG_SOFTMAX": "LogSoftmax", "LOGICAL_AND": "LogicalAnd", "LOGICAL_NOT": "LogicalNot",
    "LOGICAL_OR": "LogicalOr", "LOGISTIC": "Logistic", "MAX_POOL_2D": "MaxPool2D", "MAXIMUM": "Maximum",
    "MEAN": "Mean", "MINIMUM": "Minimum", "MIRROR_PAD": "MirrorPad", "MUL": "Mul", "NEG": "Neg",
    "NOT_EQUAL": "NotEqual", "PACK": "Pack", "PAD": "Pad", "PADV2": "PadV2", "PRELU": "Prelu",
    "QUANTIZE": "Quantize", "REDUCE_MAX": "ReduceMax", "RELU": "Relu", "RELU6": "Relu6", "RESHAPE": "Reshape",
    "RESIZE_BILINEAR": "ResizeBilinear", "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighbor", "ROUND": "Round",
    "RSQRT": "Rsqrt", "SELECT_V2": "SelectV2", "SHAPE": "Shape", "SIN": "Sin", "SLICE": "Slice",
    "SOFTMAX": "Softmax", "SPACE_TO_BATCH_ND": "SpaceToBatchNd", "SPACE_TO_DEPTH": "SpaceToDepth",
    "SPLIT": "Split", "SPLIT_V": "SplitV", "SQRT": "Sqrt", "SQUARE": "Square",
    "SQUARED_DIFFERENCE": "SquaredDifference", "SQUEEZE": "Squeeze", "STRIDED_SLICE": "StridedSlice",
    "SUB": "Sub", "SUM": "Sum", "SVDF": "Svdf", "TANH": "Tanh", "TRANSPOSE": "Transpose",
    "TRANSPOSE_CONV": "TransposeConv", "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTM",
    "UNPACK": "Unpack", "ZEROS_LIKE": "ZerosLike",
}.items()}


def check_out_dir(out_dir: str, overwrite: bool = False) -> str:
    """Absolute ``out_dir``; `OutputPathError` if it exists (without ``overwrite``) or has no parent."""
    out_dir = os.path.abspath(out_dir)
    if os.path.lexists(out_dir) and not overwrite:
        raise OutputPathError(f"Output folder {out_dir!r} exists already. Choose a new folder or pass overwrite=True.")
    if not os.path.isdir(os.path.dirname(out_dir)):
        raise OutputPathError(f"The parent folder of {out_dir!r} does not exist. Create it first.")
    return out_dir


@contextmanager
def atomic_dir(out_dir: str, overwrite: bool = False):
    """Yield a staging folder next to ``out_dir``; it becomes ``out_dir`` (by rename) only if the
    block succeeds. An existing ``out_dir`` (with ``overwrite``) is replaced, or kept on failure."""
    out_dir = check_out_dir(out_dir, overwrite)
    parent = os.path.dirname(out_dir)
    staging = backup = None
    try:
        staging = tempfile.mkdtemp(prefix=".tflm-export-", dir=parent)
        yield staging
        if os.path.lexists(out_dir):
            backup = tempfile.mkdtemp(prefix=".tflm-export-old-", dir=parent)
            os.replace(out_dir, os.path.join(backup, "old"))
        os.rename(staging, out_dir)
    except CPruneError:  # the block's own errors (a bad name=, say) say what to fix already
        raise
    except OSError as exc:
        if backup is not None and os.path.lexists(os.path.join(backup, "old")) and not os.path.lexists(out_dir):
            os.replace(os.path.join(backup, "old"), out_dir)
        raise OutputPathError(f"Could not write {out_dir!r}: {exc}. Nothing was changed. Make {parent!r} writable "
                              "(permissions, free space) or choose another output folder.") from exc
    finally:
        for folder in (staging, backup):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)


def _c_array(data: bytes) -> str:
    hexes = [f"0x{b:02x}" for b in data]
    return ",\n    ".join(", ".join(hexes[i:i + 12]) for i in range(0, len(hexes), 12))


def _io_constants(tensors: tuple, kind: str) -> list:
    lines = []
    for k, t in enumerate(tensors):
        prefix = f"k{kind}" if len(tensors) == 1 else f"k{kind}{k}"
        quantized = "" if t.scale is None else ", real value = scale * (q - zero_point)"
        lines += [f"// {kind.lower()} {k} {t.name!r}: {t.dtype}{quantized}",
                  f"constexpr int {prefix}Rank = {len(t.shape)};",
                  f"constexpr int {prefix}Dims[{prefix}Rank] = {{{', '.join(map(str, t.shape))}}};",
                  f"constexpr int {prefix}Elements = {math.prod(t.shape)};"]
        if t.scale is not None:
            lines += [f"constexpr float {prefix}Scale = {t.scale!r}f;",
                      f"constexpr int {prefix}ZeroPoint = {t.zero_point};"]
    return lines


def _data_files(tflite_bytes: bytes, name: str) -> dict:
    guard = name.upper()
    header = (f"// Generated by tflm_export: the int8 TFLite flatbuffer, {len(tflite_bytes):,} bytes.\n"
              f"#ifndef {guard}_DATA_H_\n#define {guard}_DATA_H_\n\n"
              f"extern const unsigned char g_{name}[];\nextern const unsigned int g_{name}_len;\n\n"
              f"#endif  // {guard}_DATA_H_\n")
    data = (f'#include "{name}_data.h"\n\n'
            "// TFLite Micro reads the flatbuffer in place: const keeps it in flash, alignas(16) aligns its tables.\n"
            f"alignas(16) const unsigned char g_{name}[] = {{\n    {_c_array(tflite_bytes)}}};\n"
            f"const unsigned int g_{name}_len = {len(tflite_bytes)};\n")
    return {f"{name}_data.h": header, f"{name}_data.cc": data}


def _settings(report, name: str) -> str:
    guard = name.upper()
    return "\n".join([
        f"// Generated by tflm_export. Tensor arena {report.arena.source} for "
        f"{resolve_target(report.target).describe()}: {report.arena.bytes:,} B;",
        f"// kTensorArenaSize adds the margin of {report.margin:,} B, rounded up to 16: the figure the budget "
        "check judged.", f"#ifndef {guard}_SETTINGS_H_", f"#define {guard}_SETTINGS_H_", "",
        f"constexpr int kTensorArenaSize = {report.arena_size};", "",
        *_io_constants(report.inputs, "Input"), "", *_io_constants(report.outputs, "Output"), "",
        f"#endif  // {guard}_SETTINGS_H_", ""])


def _resolver(ops, name: str) -> str:
    unknown = sorted(op for op in ops if op not in RESOLVER_METHODS)
    if unknown:
        raise ConversionError(f"No tflite::MicroMutableOpResolver method is known for op(s) {', '.join(unknown)}; "
                              "add them to tflm_export.firmware.sources.RESOLVER_METHODS or replace the layers producing them.")
    methods = sorted({RESOLVER_METHODS[op] for op in ops})
    adds = "\n".join(f"  if (resolver.{method}() != kTfLiteOk) return kTfLiteError;" for method in methods)
    guard = name.upper()
    return (f"// Generated by tflm_export: registers exactly the {len(methods)} op types of the model.\n"
            f"#ifndef {guard}_OP_RESOLVER_H_\n#define {guard}_OP_RESOLVER_H_\n\n"
            '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
            f"constexpr int kNumOps = {len(methods)};\n"
            "using ModelOpResolver = tflite::MicroMutableOpResolver<kNumOps>;\n\n"
            "// ModelOpResolver resolver; if (RegisterOps(resolver) != kTfLiteOk) { /* error */ }\n"
            f"inline TfLiteStatus RegisterOps(ModelOpResolver& resolver) {{\n{adds}\n  return kTfLiteOk;\n}}\n\n"
            f"#endif  // {guard}_OP_RESOLVER_H_\n")


def render(tflite_bytes: bytes, report, name: str = "model") -> dict:
    """The generated text files, ``{file name: text}``; ``report`` is `verify`'s for these bytes."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise OutputPathError(f"name={name!r} must be a C identifier (letters, digits, underscores).")
    ops = read_model(tflite_bytes).op_counts
    if report.flatbuffer_bytes != len(tflite_bytes) or report.ops != ops:
        raise ModelError(f"report= describes another flatbuffer ({report.flatbuffer_bytes:,} bytes, ops "
                         f"{report.ops}); this one has {len(tflite_bytes):,} bytes. Pass verify(tflite_bytes).")
    return {**_data_files(tflite_bytes, name), f"{name}_settings.h": _settings(report, name),
            "op_resolver.h": _resolver(ops, name), "report.json": report.to_json(indent=2) + "\n"}


def write_files(folder: str, tflite_bytes: bytes, files: dict, name: str) -> list:
    """Write ``files`` (``render``'s) and ``{name}.tflite`` into ``folder``; the file names."""
    for file_name, text in files.items():
        with open(os.path.join(folder, file_name), "w") as f:
            f.write(text)
    with open(os.path.join(folder, f"{name}.tflite"), "wb") as f:
        f.write(tflite_bytes)
    return sorted([*files, f"{name}.tflite"])


def write_sources(tflite_bytes: bytes, out_dir: str, report, *, name: str = "model", overwrite: bool = False) -> list:
    """Write the firmware sources, the flatbuffer and ``report.json`` into ``out_dir``, all or nothing.

    Args:
        tflite_bytes: the int8 flatbuffer.
        out_dir: the output folder; it must not exist unless ``overwrite``.
        report: the flatbuffer's `TFLMReport` (``kTensorArenaSize`` is its ``arena_size``: arena + margin).
        name: the C++ names' and files' stem: ``g_{name}[]``, ``{name}_data.cc``...
        overwrite: replace an existing ``out_dir``.

    Returns:
        The paths of the files written.

    Raises:
        OutputPathError: ``out_dir`` exists (without ``overwrite``) or cannot be written.

    Example:

    ```python
    paths = tflm_export.write_sources(tflite_bytes, "fw", tflm_export.verify(tflite_bytes))
    ```
    """
    files = render(tflite_bytes, report, name)
    with atomic_dir(out_dir, overwrite) as staging:
        names = write_files(staging, tflite_bytes, files, name)
    return [os.path.join(os.path.abspath(out_dir), n) for n in names]
