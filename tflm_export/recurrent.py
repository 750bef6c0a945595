"""Recurrent layers on TFLite Micro: LSTM layers fused into ``UNIDIRECTIONAL_SEQUENCE_LSTM``, the
recurrent layers TFLM cannot run refused by name before converting.

TFLM has one recurrent kernel, ``UNIDIRECTIONAL_SEQUENCE_LSTM`` (int8 in and out, int16 cell
state). The TF 2.21 converter fuses an LSTM into it from a ``tf.function`` marked
``api_implements="lstm_<id>"`` (what a tf_keras LSTM traces), and only at a fixed batch size. A
Keras 3 LSTM traces a ``while`` loop over TensorLists instead, which int8 TFLite cannot express;
so `batch_one_twin` gives the converter a batch-1 copy in which each Keras 3 LSTM is computed by
such a marked function: same weights, same layer names, the same float outputs.
"""
from __future__ import annotations

import functools
import uuid

from tflm_export.errors import ConversionError

NO_KERNEL = {  # Keras layer type -> what to use instead
    "GRU": "TFLite Micro has no GRU kernel; use keras.layers.LSTM",
    "SimpleRNN": "TFLite Micro has no RNN kernel; use keras.layers.LSTM",
    "RNN": "TFLite Micro runs only the fused LSTM; use keras.layers.LSTM instead of RNN(cell)",
    "Bidirectional": "TFLite Micro runs only unidirectional LSTMs; use keras.layers.LSTM (one direction)",
    "ConvLSTM1D": "TFLite Micro has no ConvLSTM kernel; use Conv1D layers, then keras.layers.LSTM",
    "ConvLSTM2D": "TFLite Micro has no ConvLSTM kernel; use Conv2D layers, a Reshape, then keras.layers.LSTM",
    "ConvLSTM3D": "TFLite Micro has no ConvLSTM kernel; use Conv3D layers, a Reshape, then keras.layers.LSTM",
}


def all_layers(model):
    """Every layer of ``model``, those of nested models included."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)


def lstm_layers(model) -> list:
    """The LSTM layers of ``model``, those of nested models included."""
    return [layer for layer in all_layers(model) if type(layer).__name__ == "LSTM"]


def refuse_unrunnable(model) -> None:
    """Raise `ConversionError` naming the first recurrent layer of ``model`` that TFLM cannot run:
    a GRU, SimpleRNN, RNN, Bidirectional or ConvLSTM, or an LSTM the converter does not fuse."""
    for layer in all_layers(model):
        kind = type(layer).__name__
        reason = NO_KERNEL.get(kind) or (_unfusable(layer) if kind == "LSTM" else None)
        if reason:
            raise ConversionError(f"{kind} layer {layer.name!r} of model {model.name!r} cannot run on TFLite Micro: "
                                  f"{reason}.")


def _unfusable(lstm) -> str | None:
    """Why the converter would not fuse ``lstm`` into UNIDIRECTIONAL_SEQUENCE_LSTM, or None."""
    activation = getattr(lstm.activation, "__name__", str(lstm.activation))
    recurrent = getattr(lstm.recurrent_activation, "__name__", str(lstm.recurrent_activation))
    if (activation, recurrent) != ("tanh", "sigmoid"):
        return (f"the fused LSTM kernel computes activation='tanh' and recurrent_activation='sigmoid'. Received: "
                f"activation={activation!r}, recurrent_activation={recurrent!r}; use the defaults")
    for flag, why in (("return_state", "the kernel keeps its states inside; use the output sequence"),
                      ("stateful", "the kernel starts each invoke from zero states; use stateful=False"),
                      ("go_backwards", "reverse the sequence before the layer instead")):
        if getattr(lstm, flag, False):
            return f"{flag}=True is not fused: {why}"
    return None


def batch_one_twin(model, keras, shape: tuple):
    """A model computing ``model``'s function on a batch of 1 of ``shape`` (without batch) in which
    the converter fuses every LSTM: a tf_keras model wrapped as is; a Keras 3 model cloned with
    each LSTM as `FusedLSTM` (other layers: from their config, with their weights). ``model`` is
    not modified.

    Raises:
        ConversionError: a Keras 3 model that cannot be cloned (subclassed...), or an LSTM with a
            mask or initial state.
    """
    inputs = keras.Input(shape, batch_size=1)
    if keras.__name__ == "tf_keras":
        return keras.Model(inputs, model(inputs), name=model.name)
    fused, pairs = _fused_lstm_class(), []

    def clone(layer):
        if type(layer).__name__ == "LSTM":
            return fused(layer)
        copy = type(layer).from_config(layer.get_config())
        pairs.append((layer, copy))
        return copy

    names = ", ".join(repr(layer.name) for layer in lstm_layers(model))
    try:
        twin = keras.models.clone_model(model, clone_function=clone, recursive=True)
    except ConversionError:
        raise
    except Exception as exc:  # a subclassed model, a layer without a working get_config...
        raise ConversionError(
            f"Model {model.name!r} has LSTM layer(s) {names}, which the converter fuses in a copy of the model "
            f"made with keras.models.clone_model, and that failed: {type(exc).__name__}: {exc}. Build the model "
            "with the functional API or Sequential, with layers that implement get_config.") from exc
    for layer, copy in pairs:
        if getattr(layer, "weights", None):  # not a Keras op (NotEqual of a Masking layer...)
            copy.set_weights(layer.get_weights())
    inputs.name = model.inputs[0].name  # the converter names the input tensor after it
    return keras.Model(inputs, twin(inputs), name=model.name)


def standard_lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
    """Keras' LSTM over ``inputs`` (batch, time, features), gates i, f, c, o; with the signature and
    the five results ``(last output, outputs, h, c, runtime)`` the converter expects of a function
    it replaces by ``UNIDIRECTIONAL_SEQUENCE_LSTM``."""
    import tensorflow as tf

    h, c, outputs = init_h, init_c, []
    for step in range(inputs.shape[1]):
        z = tf.matmul(inputs[:, step], kernel) + tf.matmul(h, recurrent_kernel) + bias
        i, f, g, o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        outputs.append(h)
    return h, tf.stack(outputs, axis=1), h, c, tf.constant(0.0)


@functools.cache
def _fused_lstm_class():
    """`FusedLSTM`, made on first use (it needs Keras 3 and TensorFlow imported)."""
    import keras
    import numpy as np
    import tensorflow as tf

    class FusedLSTM(keras.layers.Layer):
        """A Keras 3 ``LSTM`` (default activations) computed by `standard_lstm` as a ``tf.function``
        marked for the converter's LSTM fusion; its weights are constants of the trace."""

        def __init__(self, lstm):
            super().__init__(name=lstm.name, dtype=lstm.dtype_policy)
            kernel, recurrent_kernel, *bias = lstm.get_weights()
            self.units, self.return_sequences = lstm.units, lstm.return_sequences
            self.constants = (kernel, recurrent_kernel, bias[0] if bias else np.zeros(4 * lstm.units, kernel.dtype))
            self.lstm = tf.function(standard_lstm, autograph=False, experimental_attributes={
                "api_implements": f"lstm_{uuid.uuid4()}", "time_major": False, "go_backwards": False})

        def call(self, sequences, initial_state=None, mask=None, training=None):
            zeros = tf.zeros((sequences.shape[0], self.units), sequences.dtype)
            last, outputs, *_ = self.lstm(sequences, zeros, zeros, *map(tf.constant, self.constants))
            return outputs if self.return_sequences else last

        def compute_output_spec(self, sequences, initial_state=None, mask=None, training=None):
            """Refuse, while the twin is built, what the fused kernel cannot compute."""
            if initial_state is not None or mask is not None:
                given = "a mask" if mask is not None else "an initial state"
                raise ConversionError(f"LSTM layer {self.name!r} gets {given}; TFLite Micro's fused LSTM starts from "
                                      "zero states and runs over the whole sequence. Remove the mask (Masking, "
                                      "mask_zero) or the initial_state input.")
            return super().compute_output_spec(sequences)

        def compute_output_shape(self, input_shape):
            return tuple(input_shape[:2]) + (self.units,) if self.return_sequences else (input_shape[0], self.units)

    return FusedLSTM
