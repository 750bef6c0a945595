"""verify(): the arena of an int8 flatbuffer on its target's TFLM build, measured on the real TFLite
Micro runtime and checked against ``tf.lite.Interpreter`` and the Keras float model."""
from __future__ import annotations

import numpy as np

from tflm_export.errors import ModelError

from tflm_export.boards import resolve_board
from tflm_export.budget import parse_margin
from tflm_export.convert import quiet_tensorflow
from tflm_export.micro.flatbuffer import TensorInfo, graph_from_tflite, read_model
from tflm_export.micro.planner import predict_arena
from tflm_export.firmware.code_size import code_bytes
from tflm_export.runtime.report import TFLMReport
from tflm_export.runtime.runner import measure


def quantize(x: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """Float inputs in ``tensor``'s dtype: ``round(x / scale + zero_point)`` clipped, for int8/uint8.

    Args:
        x: float inputs, shape ``(N, *input_shape)``.
        tensor: the model input's `TensorInfo` (its dtype, scale and zero point).

    Returns:
        An array of ``x``'s shape in ``tensor.dtype`` (a plain cast for a float input).
    """
    if tensor.scale is None:
        return x.astype(tensor.dtype)
    info = np.iinfo(tensor.dtype)
    return np.clip(np.round(x / tensor.scale + tensor.zero_point), info.min, info.max).astype(tensor.dtype)


def _tflite_outputs(tflite_bytes: bytes, samples: np.ndarray) -> list:
    """Outputs of ``tf.lite.Interpreter`` with its reference kernels, one array per output: TFLM's
    arithmetic but for FULLY_CONNECTED's requantization rounding (see `TFLMReport`); the default
    XNNPACK/optimized kernels differ on convolutions too."""
    import tensorflow as tf

    with quiet_tensorflow():  # "tf.lite.Interpreter is deprecated": it is still the reference here
        interpreter = tf.lite.Interpreter(model_content=tflite_bytes,
                                          experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    out_indices = [details["index"] for details in interpreter.get_output_details()]
    outputs = [[] for _ in out_indices]
    for sample in samples:
        interpreter.set_tensor(index, sample[None])
        interpreter.invoke()
        for k, out in enumerate(out_indices):
            outputs[k].append(interpreter.get_tensor(out)[0].copy())
    return [np.array(o) for o in outputs]


def _float_inputs(test_inputs, tensor: TensorInfo, n_inputs: int) -> np.ndarray:
    if n_inputs != 1:
        raise ModelError(f"test_inputs= needs a single-input model; this flatbuffer has {n_inputs} inputs.")
    x = np.asarray(test_inputs, dtype="float32")
    if x.shape[1:] != tensor.shape[1:] or len(x) == 0:
        raise ModelError(f"test_inputs must have shape (N, *{tensor.shape[1:]}) like the model input "
                         f"{tensor.name!r}. Received: shape {x.shape}.")
    return x


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> int | float:
    """In quantization steps for integer outputs."""
    if np.issubdtype(a.dtype, np.integer):
        return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())
    return float(np.abs(a - b).max())


def _top1(outputs, n: int) -> np.ndarray:
    return np.asarray(outputs).reshape(n, -1).argmax(axis=1)


def _agreement(run_outputs: tuple, x: np.ndarray, expected, labels, keras_model) -> dict:
    """Top-1 agreement with the float model and accuracies, from TFLM's first output."""
    n, fields = len(x), {}
    tflm_top1 = _top1(run_outputs[0], n)
    if expected is None and keras_model is not None:
        with quiet_tensorflow():  # a predict per new model: tf.function retracing warnings
            expected = keras_model.predict(x, verbose=0)
    if isinstance(expected, (list, tuple, dict)):
        raise ModelError("Top-1 agreement needs one float output per sample; the Keras model has several "
                         "outputs. Pass expected= with the float outputs that match the TFLM output 0.")
    if labels is not None:
        labels = np.asarray(labels)
        labels = labels.argmax(axis=1) if labels.ndim == 2 else labels.ravel()
        if len(labels) != n:
            raise ModelError(f"labels must have one entry per test input ({n}). Received: {len(labels)} labels.")
        fields["int8_accuracy"] = float((tflm_top1 == labels).mean())
    if expected is not None:
        if len(expected) != n:
            raise ModelError(f"expected= must hold one float output per test input ({n}). Received: {len(expected)}.")
        float_top1 = _top1(expected, n)
        fields["keras_top1_agreement"] = float((tflm_top1 == float_top1).mean())
        if labels is not None:
            fields["float_accuracy"] = float((float_top1 == labels).mean())
    return fields


def verify(tflite_bytes: bytes, *, test_inputs=None, expected=None, labels=None, keras_model=None, budget=None,
           board=None, target=None, margin=0, flash: str = "image", latency_runs: int = 20) -> TFLMReport:
    """Run ``tflite_bytes`` on the TFLite Micro runtime (in a subprocess) and report what it needs.

    The report's arena is that of the ``target`` build (a board's by default), predicted by
    replaying its allocator; without one, the host runtime's. The host runtime measures its
    minimal arena (16-byte steps, see `runtime.runner.find_min_arena`) either way, as a cross-check
    of the replay; the budget is judged on the arena + ``margin``. It reads the runtime's arena
    breakdown and the ops, times ``latency_runs`` invokes (median). With
    ``test_inputs``, TFLM's outputs are compared with ``tf.lite.Interpreter`` (bit-exact, or the
    max difference in quantization steps: FULLY_CONNECTED rounds differently, 1 step per layer
    that later layers carry on, see `TFLMReport`) and their top-1 with the float model.

    Args:
        tflite_bytes: an int8 ``.tflite`` flatbuffer, e.g. from `convert`.
        test_inputs: optional float inputs ``(N, *input_shape)`` (single-input models), quantized
            with the input's scale. Default None: one all-zero sample, no comparisons.
        expected: optional float outputs ``(N, classes)`` of the Keras model for ``test_inputs``,
            for top-1 agreement without ``keras_model``.
        labels: optional class ids ``(N,)`` or one-hot ``(N, classes)``: adds accuracies.
        keras_model: optional float model whose ``predict(test_inputs)`` gives ``expected``.
        budget: optional `Budget` (RAM, flash bytes, MACs): adds fits and headroom per resource.
        board: optional board name of `BOARDS` (or a `Board`): its budget and its target, unless
            ``budget`` or ``target`` replaces them.
        target: optional TFLM build the arena is for: a `Target` or its name (``"cortex-m4/cmsis_nn"``,
            see `TARGETS`). Default None: the board's, else the host runtime's (measured).
        flash: ``"image"`` (default): flash counts the model and the TFLM code its op resolver
            links on the target build (``report.code_bytes``, where the build's code sizes are
            known: docs/CORTEXM.md); ``"model"``: the model only.
        margin: bytes (or a size such as ``"1KB"``) reserved above the arena: ``ram`` is judged on
            ``arena + margin`` rounded up to 16 (`TFLMReport.arena_size`). Default 0.
        latency_runs: invokes timed for the median latency; 0 skips timing. Default 20.

    Returns:
        A `TFLMReport`: the target's arena, the host measurement, the breakdown, flatbuffer bytes, ops, MACs, I/O tensors,
        latency and, with ``test_inputs``, agreement and accuracies.

    Raises:
        ModelFileError: ``tflite_bytes`` is not a TFLite flatbuffer.
        ModelError: ``test_inputs``, ``expected`` or ``labels`` do not match the model or each other.
        BudgetError: an unknown board or target, or a bad ``margin``.
        TFLMRuntimeError: the runtime fails, aborts or crashes on the model.

    Example:

    ```python
    tflite = tflm_export.convert(model, x_train[:100])
    report = tflm_export.verify(tflite, test_inputs=x_test[:500], labels=y_test[:500],
                                keras_model=model, board="nano33ble")
    print(report.target, report.arena.bytes, report.int8_accuracy, report.keras_top1_agreement)
    ```
    """
    info = read_model(tflite_bytes)
    budget, board, target = resolve_board(budget, board, target)
    margin = parse_margin(margin)
    tensor = info.inputs[0]
    x = None if test_inputs is None else _float_inputs(test_inputs, tensor, len(info.inputs))
    samples = (quantize(x, tensor) if x is not None else
               [np.zeros((1,) + t.shape[1:], t.dtype) for t in info.inputs])
    search, run = measure(tflite_bytes, samples, latency_runs=latency_runs)
    fields = {}
    if x is not None:
        reference = _tflite_outputs(tflite_bytes, samples)
        fields["tflite_max_abs_diff"] = max(_max_abs_diff(r, o) for r, o in zip(reference, run.outputs))
        fields["tflite_mismatches"] = sum(int((r != o).sum()) for r, o in zip(reference, run.outputs))
        fields.update(_agreement(run.outputs, x, expected, labels, keras_model), samples=len(x))
    host = target is None or target.core == "host"
    code = None if host else code_bytes(info.op_counts, target.name, flash)
    graph = graph_from_tflite(tflite_bytes)  # read once for both builds' replays
    return TFLMReport(
        flatbuffer_bytes=len(tflite_bytes), arena=search if host else predict_arena(graph, target),
        target="host" if host else target.name, margin=margin, host_arena=search,
        host_predicted_bytes=predict_arena(graph).bytes, arena_breakdown=run.allocations, ops=info.op_counts,
        macs=info.macs,
        inputs=info.inputs, outputs=info.outputs,
        flash_bytes=len(tflite_bytes) + (code or 0), code_bytes=code, latency_runs=latency_runs,
        latency_ms=float(np.median(run.latencies_s) * 1e3) if latency_runs else None,
        budget=budget, board=board, **fields)
