"""verify(): measure an int8 flatbuffer on the real TFLM runtime and check it against references."""
from __future__ import annotations

from collections import Counter

import numpy as np

from keras_cprune.errors import BudgetError
from keras_cprune.tflm_planner import graph_from_tflite, predict_arena

from .boards import board_budget
from .report import Fit, TFLMReport
from .runtime import find_min_arena, run_model


def _input_details(tflite_bytes: bytes):
    import tensorflow as tf

    # Reference kernels, as TFLM runs them (the default XNNPACK delegate rounds differently).
    interpreter = tf.lite.Interpreter(model_content=tflite_bytes,
                                      experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    return interpreter, interpreter.get_input_details()[0], interpreter.get_output_details()[0]


def quantize_inputs(x: np.ndarray, details: dict) -> np.ndarray:
    """Float inputs in the model's input dtype (int8/uint8 with its scale and zero point)."""
    dtype = details["dtype"]
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    scale, zero = details["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _tflite_outputs(interpreter, inp: dict, out: dict, samples: np.ndarray) -> np.ndarray:
    outputs = []
    for sample in samples:
        interpreter.set_tensor(inp["index"], sample[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.array(outputs)


def resources(arena: int, flash: int, macs: int | None, budget=None, board=None) -> dict:
    """``{"ram"|"flash"|"macs": Fit}`` for each limit the budget (or board) sets."""
    if budget is not None and board is not None:
        raise BudgetError("Give either budget= or board=, not both.")
    budget = board_budget(board) if board is not None else budget
    if budget is None:
        return {}
    used = {"ram": arena, "flash": flash, "macs": macs}
    result = {}
    for name, value in used.items():
        limit = getattr(budget, name, None)
        if limit is None:
            continue
        if value is None:
            raise BudgetError(f"A macs= budget needs the MACs of the model: pass keras_model= to verify().")
        result[name] = Fit(int(value), int(limit))
    return result


def verify(tflite_bytes: bytes, *, test_inputs=None, expected=None, labels=None, keras_model=None, budget=None,
           board=None, latency_runs: int = 20, flash_bytes: int | None = None, compile_result=None) -> TFLMReport:
    """Run ``tflite_bytes`` on the TFLM runtime (in subprocesses) and report what it needs.

    Finds the minimal tensor arena by bisection, reads the runtime's allocation breakdown,
    times ``latency_runs`` invokes. With float ``test_inputs``: compares TFLM's int8 outputs
    with ``tf.lite.Interpreter`` (bit-exact or the max difference) and the top-1 class with
    ``keras_model`` (or with ``expected`` float outputs); with ``labels`` also accuracy.
    ``budget``/``board`` add fits/headroom per resource.
    """
    graph = graph_from_tflite(tflite_bytes)
    predicted = predict_arena(graph).total_bytes
    search = find_min_arena(tflite_bytes, predicted)
    interpreter, inp, out = _input_details(tflite_bytes)
    samples = None if test_inputs is None else quantize_inputs(np.asarray(test_inputs, dtype="float32"), inp)
    run = run_model(tflite_bytes, search.arena, samples if samples is not None else
                    np.zeros((1,) + tuple(inp["shape"][1:]), inp["dtype"]), latency_runs)
    fields = {}
    if samples is not None:
        fields["tflite_vs_tflm_max_diff"] = int(np.abs(
            _tflite_outputs(interpreter, inp, out, samples).astype(np.int64) - run.outputs.astype(np.int64)).max())
        tflm_top1 = run.outputs.reshape(len(samples), -1).argmax(1)
        if keras_model is not None and expected is None:
            expected = keras_model.predict(np.asarray(test_inputs, dtype="float32"), verbose=0)
        if expected is not None:
            float_top1 = np.asarray(expected).reshape(len(samples), -1).argmax(1)
            fields["keras_top1_agreement"] = float((tflm_top1 == float_top1).mean())
            if labels is not None:
                fields["float_accuracy"] = float((float_top1 == np.asarray(labels).ravel()).mean())
        if labels is not None:
            fields["int8_accuracy"] = float((tflm_top1 == np.asarray(labels).ravel()).mean())
    macs = None
    if keras_model is not None:
        from keras_cprune.complexity import analyze

        macs = analyze(keras_model).macs
    flash = flash_bytes if flash_bytes is not None else len(tflite_bytes)
    return TFLMReport(
        flatbuffer_bytes=len(tflite_bytes), arena_bytes=search.arena, predicted_arena_bytes=predicted,
        arena_probes=search.probes, ops=dict(Counter(op.op for op in graph.ops)),
        latency_ms=float(np.median(run.latencies_s) * 1e3) if len(run.latencies_s) else None,
        allocations=run.allocations, flash_bytes=flash, compile=compile_result,
        resources=resources(search.arena, flash, macs, budget, board), **fields)
