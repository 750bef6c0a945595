"""Full-integer int8 conversion of a Keras 3 or tf_keras model for TFLite Micro."""
from __future__ import annotations

import contextlib
import io
import itertools

import numpy as np

from keras_cprune.errors import ConversionError
from keras_cprune.graph import check_model
from keras_cprune.tflm_planner import graph_from_tflite

IO_DTYPES = ("int8", "uint8", "float32")
_QUANTIZE_OPS = {"QUANTIZE", "DEQUANTIZE"}


def representative_samples(model, data, num_samples: int = 100) -> list:
    """Up to ``num_samples`` float32 samples of shape ``(1, *input_shape)`` from an array, a
    ``tf.data.Dataset`` (of inputs or ``(inputs, labels)``), an iterable or a callable."""
    shape = tuple(model.inputs[0].shape[1:])
    if callable(data) and not hasattr(data, "shape"):
        data = data()
    if hasattr(data, "shape"):
        array = np.asarray(data)
        if array.shape[1:] != shape and array.shape == shape:
            array = array[None]
        batches = [array]
    else:
        batches = (b[0] if isinstance(b, (tuple, list)) else b for b in data)
    samples = []
    for batch in batches:
        batch = np.asarray(batch)
        if batch.shape == shape:
            batch = batch[None]
        if batch.shape[1:] != shape:
            raise ConversionError(f"Representative data has samples of shape {batch.shape[1:]}; the model input "
                                  f"{model.inputs[0].name!r} expects {shape}. Pass an array of shape (N, *{shape}).")
        if not np.issubdtype(batch.dtype, np.number):
            raise ConversionError(f"Representative data must be numeric; received dtype {batch.dtype}.")
        samples.extend(batch[i:i + 1].astype("float32") for i in range(len(batch)))
        if len(samples) >= num_samples:
            break
    samples = samples[:num_samples]
    if not samples:
        raise ConversionError("Representative data is empty; the int8 converter needs a few (e.g. 100) "
                              "typical inputs to calibrate activation ranges.")
    bad = [i for i, s in enumerate(samples) if not np.all(np.isfinite(s))]
    if bad:
        raise ConversionError(f"Representative data has NaN or infinite values (sample {bad[0]} of {len(samples)}); "
                              "clean the data before calibration.")
    return samples


def convert(model, representative_data, *, io_dtype: str = "int8", num_samples: int = 100) -> bytes:
    """Int8 TFLite flatbuffer of ``model``: per-channel int8 weights, int8 kernels only.

    ``io_dtype`` sets the input/output tensor type ("int8", "uint8" or "float32"); the model
    is never modified. Raises `ConversionError` for bad data or ops that cannot be int8.
    """
    import tensorflow as tf

    keras = check_model(model)
    if io_dtype not in IO_DTYPES:
        raise ConversionError(f"io_dtype must be one of {IO_DTYPES}. Received: io_dtype={io_dtype!r}.")
    samples = representative_samples(model, representative_data, num_samples)
    if keras.__name__ == "tf_keras":
        spec = tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), tf.float32)
        function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = getattr(tf, io_dtype)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            flatbuffer = converter.convert()
    except Exception as exc:  # the converter raises ConverterError / RuntimeError with op names
        raise ConversionError(f"The int8 conversion of {model.name!r} failed: {_first_lines(exc)}. Layers whose "
                              "ops have no int8 TFLite kernel must be replaced (see the op named above).") from exc
    _check_integer_only(flatbuffer, io_dtype)
    return flatbuffer


def _first_lines(exc: Exception, n: int = 6) -> str:
    return " ".join(itertools.islice((line.strip() for line in str(exc).splitlines() if line.strip()), n))


def _check_integer_only(flatbuffer: bytes, io_dtype: str) -> None:
    graph = graph_from_tflite(flatbuffer)
    floats = {op.op for op in graph.ops if op.op not in _QUANTIZE_OPS
              and any(t >= 0 and not graph.tensors[t].constant and graph.tensors[t].itemsize == 4
                      and graph.tensors[t].quant_channels == 0 and len(graph.tensors[t].shape) > 1
                      for t in op.inputs + op.outputs)}
    if floats:
        raise ConversionError(f"The converted model still runs float ops: {', '.join(sorted(floats))}. TFLite "
                              "Micro int8 deployment needs integer kernels; replace the layers that produce them.")
