"""Full-integer int8 conversion of a Keras 3 or tf_keras model for TFLite Micro.

Both go through ``TFLiteConverter.from_keras_model``: in TF 2.21, ``from_concrete_functions`` on a
Keras 3 model keeps its variables as READ_VARIABLE ops and calibration fails. A Keras 3 model on
another backend (JAX, PyTorch) is converted by this same function in a TensorFlow-backend child
process (`tflm_export.convert_subprocess`).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import re
import sys
import warnings

import numpy as np

from tflm_export.convert_subprocess import convert_in_tensorflow_process, needs_tensorflow_process
from tflm_export.errors import ConversionError, ModelError
from tflm_export.micro.flatbuffer import read_model
from tflm_export.recurrent import all_layers, batch_one_twin, lstm_layers, refuse_unrunnable

IO_DTYPES = ("int8", "uint8", "float32")
NUM_SAMPLES = 100  # representative samples used for calibration, at most
QUIET_LOGGERS = ("tensorflow", "absl")  # Python loggers raised to ERROR while TensorFlow works for us


@contextlib.contextmanager
def quiet_tensorflow():
    """Silence TensorFlow while it works for us: its C++ log lines and the converter's prints
    ("Reading SavedModel...", "fully_quantize: 0, inference_type: 6...") written to file
    descriptors 1 and 2, Python's ``sys.stdout``/``sys.stderr``, warnings, and the ``tensorflow``
    and ``absl`` loggers below ERROR (tf.function retracing warnings). Everything is restored on
    exit, including loggers' levels the user set. Error text still reaches the caller in the
    exceptions raised. Output other threads write to fd 1/2 meanwhile is lost too."""
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with _fds_to_devnull(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _fds_to_devnull():
    """Point file descriptors 1 and 2 at /dev/null (C++ writes there directly), then back."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # closed or replaced streams: nothing to flush
            stream.flush()
    saved = {}
    try:
        with open(os.devnull, "wb") as devnull:
            for fd in (1, 2):
                with contextlib.suppress(OSError):  # a closed descriptor stays closed
                    saved[fd] = os.dup(fd)
                    os.dup2(devnull.fileno(), fd)
        yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


def _keras_of(model):
    """The keras module (``keras`` or ``tf_keras``) that built ``model``; `ModelError` otherwise."""
    for name in ("keras", "tf_keras"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # tf_keras is optional
            continue
        if isinstance(model, module.Model):
            return module
    raise ModelError(f"Expected `model` to be a `keras.Model` (Keras 3) or a `tf_keras.Model`. "
                     f"Received: model={type(model).__name__} object.")


def _declared_shape(model) -> tuple | None:
    """Input shape without batch (None for free dimensions), or None for a subclassed model."""
    try:
        inputs = model.inputs
    except AttributeError:  # subclassed Keras 3 model
        return None
    if not inputs:
        return None
    if len(inputs) != 1:
        raise ConversionError(f"Model {model.name!r} has {len(inputs)} inputs; tflm_export converts single-input "
                              "models (one sensor tensor, the TFLite Micro norm). Concatenate the inputs into one.")
    dtype = str(getattr(inputs[0].dtype, "name", inputs[0].dtype))
    if "float" not in dtype:
        raise ConversionError(f"The input of model {model.name!r} is {dtype}; int8 export calibrates and quantizes "
                              "a float input. Feed floats (e.g. cast inside the model after a float Input).")
    return tuple(inputs[0].shape[1:])


def representative_samples(data, shape: tuple | None, num_samples: int = NUM_SAMPLES) -> list:
    """Up to ``num_samples`` float32 arrays of shape ``(1, *shape)`` for calibration.

    Args:
        data: an array ``(N, *shape)``, a ``tf.data.Dataset``, an iterable or a callable returning
            one. Elements may be batched or single samples, bare or as ``(x, y)`` / ``[x]``.
        shape: the model input shape without batch; ``None`` entries match any size; None: any
            shape (the first element's).
        num_samples: most samples taken. Default `NUM_SAMPLES` (100).

    Returns:
        A list of float32 arrays, each of shape ``(1, *shape)``.

    Raises:
        ConversionError: the data is empty, not numeric, of another shape, or not finite.
    """
    if callable(data) and not hasattr(data, "shape"):
        data = data()
    batches = [data] if hasattr(data, "shape") else (b[0] if isinstance(b, (tuple, list)) else b for b in data)
    samples, rank = [], None if shape is None else len(shape)
    for batch in batches:
        batch = np.asarray(batch)
        if not (np.issubdtype(batch.dtype, np.integer) or np.issubdtype(batch.dtype, np.floating)):
            raise ConversionError(f"Representative data must be real numbers. Received dtype {batch.dtype}.")
        received = batch.shape
        rank = rank if rank is not None else batch.ndim - 1
        if batch.ndim == rank:
            batch = batch[None]
        if batch.ndim != rank + 1 or not _matches(batch.shape[1:], shape):
            raise ConversionError(f"Representative data has samples of shape {batch.shape[1:]} (received an array "
                                  f"of shape {received}); the model input expects {shape}. Pass an array "
                                  f"(N, *{shape}) or a dataset of such.")
        samples.extend(batch[i:i + 1].astype("float32") for i in range(min(len(batch), num_samples - len(samples))))
        if len(samples) == num_samples:
            break
    if not samples:
        raise ConversionError("Representative data is empty; the int8 converter needs typical inputs (e.g. 100) "
                              "to calibrate the activation ranges.")
    bad = [i for i, s in enumerate(samples) if not np.isfinite(s).all()]
    if bad:
        raise ConversionError(f"Representative data has NaN or infinite values (in {len(bad)} of {len(samples)} "
                              f"samples, first: sample {bad[0]}); clean the data before calibration.")
    return samples


def _matches(received: tuple, expected: tuple | None) -> bool:
    return expected is None or (len(received) == len(expected) and all(
        e is None or e == r for r, e in zip(received, expected)))


def convert(model, representative_data, *, io_dtype: str = "int8", num_samples: int = NUM_SAMPLES,
            per_channel_dense: bool = True, custom_objects: dict | None = None) -> bytes:
    """Int8 TFLite flatbuffer of ``model`` (Keras 3 or tf_keras) for TFLite Micro.

    Weights int8 (per output channel), activations int8, only ``TFLITE_BUILTINS_INT8`` kernels.
    ``model`` is not modified; TensorFlow's log output is silenced meanwhile. A Keras 3 model on
    the JAX or PyTorch backend is saved and converted in a TensorFlow-backend subprocess (a few
    seconds more; see `tflm_export.convert_subprocess` for the custom objects it can load). A model
    with LSTM layers is converted at batch 1, each LSTM fused into ``UNIDIRECTIONAL_SEQUENCE_LSTM``
    (a Keras 3 model through a twin computing the same floats, see `tflm_export.recurrent`).

    Args:
        model: a single-input `keras.Model` (Keras 3) or `tf_keras.Model` with a float input;
            free input dimensions are fixed from the data.
        representative_data: typical float inputs to calibrate the activation ranges: an array
            ``(N, *input_shape)``, a ``tf.data.Dataset``, an iterable or a callable returning one
            (elements batched or not, bare or ``(x, y)``).
        io_dtype: type of the input and output tensors: ``"int8"`` (default), ``"uint8"`` or
            ``"float32"`` (a QUANTIZE/DEQUANTIZE op at each end).
        num_samples: most samples of ``representative_data`` used for calibration. Default 100.
        per_channel_dense: one weight scale per output unit of a Dense layer (TensorFlow's default).
            TFLM keeps each FULLY_CONNECTED's per-channel multipliers and shifts in the arena (8 bytes
            a unit), which dominates the arena of a stack of Dense layers (the MLPerf Tiny
            autoencoder: 22 KB against 4.6 KB per tensor); ``False`` quantizes Dense weights per
            tensor. Convolutions stay per channel.
        custom_objects: ``{name: class or function}`` needed to load the model in the TensorFlow
            process, for a Keras 3 model on another backend, besides those registered with
            ``keras.saving.register_keras_serializable`` (which it loads anyway). Default None.

    Returns:
        The ``.tflite`` flatbuffer as `bytes`.

    Raises:
        ModelError: ``model`` is not a Keras model.
        ConversionError: bad arguments or data, a recurrent layer TFLM cannot run (GRU...), a failed
            conversion, or ops left in float; ops are named with the Keras layers they come from.

    Example:

    ```python
    tflite = tflm_export.convert(model, x_train[:100])
    open("model.tflite", "wb").write(tflite)
    report = tflm_export.verify(tflite, test_inputs=x_test, labels=y_test, keras_model=model)
    ```
    """
    keras = _keras_of(model)
    if io_dtype not in IO_DTYPES:
        raise ConversionError(f"io_dtype must be one of {IO_DTYPES}. Received: io_dtype={io_dtype!r}.")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ConversionError(f"num_samples must be a positive integer. Received: num_samples={num_samples!r}.")
    if not isinstance(per_channel_dense, bool):
        raise ConversionError("per_channel_dense must be True or False. "
                              f"Received: per_channel_dense={per_channel_dense!r}.")
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise ConversionError("custom_objects must be a dict {name: class or function}. "
                              f"Received: custom_objects={custom_objects!r}.")
    name, declared = model.name, _declared_shape(model)
    refuse_unrunnable(model)
    samples = representative_samples(representative_data, declared, num_samples)
    if needs_tensorflow_process(keras):  # the converter traces with TensorFlow: convert a saved copy there
        options = {"io_dtype": io_dtype, "num_samples": len(samples), "per_channel_dense": per_channel_dense}
        return convert_in_tensorflow_process(model, np.concatenate(samples), options, custom_objects)
    import tensorflow as tf

    layers, lstms = _layer_names(model), len(lstm_layers(model))
    if lstms:  # the converter fuses an LSTM at a fixed batch size only
        model = batch_one_twin(model, keras, samples[0].shape[1:])
    elif declared is None or None in declared:  # subclassed or free dimensions: fix them from the data
        inputs = keras.Input(samples[0].shape[1:])
        model = keras.Model(inputs, model(inputs))  # a wrapper; the model itself is unchanged
    try:
        with quiet_tensorflow():  # the converter's log lines would bury the user's own output
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([s] for s in samples)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = getattr(tf, io_dtype)
            converter._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel_dense
            flatbuffer = converter.convert()
    except Exception as exc:  # ConverterError, RuntimeError... with the op names in the text
        raise ConversionError(f"The int8 conversion of {name!r} failed: {_explain(exc, layers)}") from exc
    _check_kernels(read_model(flatbuffer), name, layers, lstms)
    return flatbuffer


def _check_kernels(info, name: str, layers: set, lstms: int) -> None:
    """Raise `ConversionError` if the converted model (its `ModelInfo`) computes in float, naming the
    layers of those ops, or if fewer than its ``lstms`` LSTM layers were fused."""
    if info.float_ops:
        producers = _from_layers(layers, (tensor for _, tensor in info.float_op_outputs))
        raise ConversionError(f"The converted model still computes in float: {', '.join(info.float_ops)}{producers}. "
                              "TFLite Micro int8 deployment needs integer kernels; replace the layers that produce "
                              "these ops.")
    fused = info.op_counts.get("UNIDIRECTIONAL_SEQUENCE_LSTM", 0)
    if fused != lstms:
        raise ConversionError(f"The converter fused {fused} of the {lstms} LSTM layers of {name!r} into "
                              "UNIDIRECTIONAL_SEQUENCE_LSTM; the others became unrolled ops. Use keras.layers.LSTM "
                              "with its default activations.")


def _layer_names(model) -> set:
    """The names of ``model``'s layers, nested models' included."""
    return {layer.name for layer in all_layers(model)}


def _from_layers(layers: set, paths) -> str:
    """", from layer(s) 'a', 'b'" for the Keras layers of ``layers`` that the converter's op or tensor
    ``paths`` name (``functional_1/lstm_1/TensorArrayV2@__inference...``: the name scope of layer
    ``lstm``, uniquified with ``_1``); the innermost layer of each path; "" when none is named."""
    found = []
    for path in paths:
        parts = [part for part in re.split(r"[/;@]", path) if part]
        hits = [part if part in layers else re.sub(r"_\d+$", "", part) for part in parts]
        hits = [hit for hit in hits if hit in layers]
        if hits and hits[-1] not in found:
            found.append(hits[-1])
    return f", from layer(s) {', '.join(map(repr, found))}" if found else ""


def _explain(exc: Exception, layers: set) -> str:
    """The ops named in a converter error, with the Keras layers their locations name, or its first lines."""
    text = str(exc)
    ops = sorted(set(re.findall(r"'tf\.(\w+)' op", text)) | set(re.findall(r"not yet supported for op: '(\w+)'", text)))
    if ops:
        paths = (path for op, path in re.findall(r'fused\["(\w+):", "([^"]+)"', text) if op in ops)
        return (f"TensorFlow op(s) {', '.join(ops)} have no int8 TFLite builtin kernel{_from_layers(layers, paths)}. "
                "Replace those layers (e.g. a Lambda layer) with layers that lower to int8 builtins.")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:3])[:600] or type(exc).__name__
