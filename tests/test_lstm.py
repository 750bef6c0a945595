"""LSTM to the board: Keras 3 LSTM layers export to TFLM's fused int8 UNIDIRECTIONAL_SEQUENCE_LSTM
(through a batch-1 twin that computes the same floats), TFLM runs them, the arena is predicted
byte-exact from the flatbuffer and from the Keras graph, pruned front ends stay equivalent, and the
recurrent layers TFLM cannot run are refused by name."""
import sys

import keras
import numpy as np
import pytest
from models import randomize
from planning import pruned_and_plan
from tflm_checks import assert_exact, predicted_and_measured

import tflm_export
from keras_cprune import estimate_arena, zoo
from keras_cprune.errors import ConversionError
from keras_cprune.pruning.context import PruneContext
from tflm_export.convert import _from_layers
from tflm_export.micro.flatbuffer import read_model
from tflm_export.micro.planner import predict_arena_from_tflite
from tflm_export.recurrent import batch_one_twin
from tflm_export.runtime.runner import find_min_arena

L = keras.layers


def conv1d_lstm(units=8, return_sequences=False, steps=20, features=8):
    inputs = keras.Input((steps, features))
    x = L.Conv1D(12, 3, activation="relu", name="conv")(inputs)
    x = L.LSTM(units, return_sequences=return_sequences, name="lstm")(x)
    if return_sequences:
        x = L.Flatten(name="flatten")(x)
    return keras.Model(inputs, L.Dense(4, name="head")(x), name="conv1d_lstm")


def conv2d_lstm(units=16, return_sequences=True):
    """Conv2D over (frames, coefficients), Reshape to (frames, features), LSTM."""
    inputs = keras.Input((16, 10, 1))
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="conv")(inputs)
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    x = L.Reshape((16, 30), name="frames")(L.MaxPooling2D((1, 2), name="pool")(x))
    x = L.LSTM(units, return_sequences=return_sequences, name="lstm")(x)
    if return_sequences:
        x = L.GlobalAveragePooling1D(name="gap")(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="head")(x), name="conv2d_lstm")


def samples(model, n=8, seed=0):
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(seed).uniform(-1, 1, (n,) + shape).astype("float32")


@pytest.mark.parametrize("return_sequences", [False, True])
def test_twin_computes_the_same_floats_and_leaves_the_model_alone(return_sequences):
    model = conv1d_lstm(8, return_sequences)
    randomize(model, seed=1, scale=0.4)
    config, weights = model.get_config(), [w.copy() for w in model.get_weights()]
    twin = batch_one_twin(model, keras, (20, 8))
    assert [layer.name for layer in twin.layers[1].layers[1:]] == [layer.name for layer in model.layers[1:]]
    assert type(twin.layers[1].get_layer("lstm")).__name__ == "FusedLSTM"
    x = samples(model, 3)
    expected = model.predict(x, verbose=0)
    assert np.abs(expected).max() > 0.05  # the LSTM's output matters
    got = np.concatenate([np.asarray(twin(x[i:i + 1])) for i in range(3)])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert model.get_config() == config and all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))


def test_kws_lstm_converts_to_the_fused_int8_lstm_and_runs_on_tflm():
    model = zoo.kws_lstm(units=16)
    randomize(model, seed=2, scale=0.3)
    x = samples(model, 16)
    tflite = tflm_export.convert(model, x)
    info = read_model(tflite)
    assert info.op_counts["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 1 and info.float_ops == ()
    assert set(info.ops) <= {"RESHAPE", "CONV_2D", "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "FULLY_CONNECTED",
                             "SOFTMAX"}
    report = tflm_export.verify(tflite, test_inputs=x, keras_model=model, latency_runs=0)
    assert report.arena.bytes == find_min_arena(tflite).bytes
    assert report.keras_top1_agreement >= 0.75  # int8 LSTM against the float model, random weights


MODELS = {"conv1d_8": lambda: conv1d_lstm(8, False), "conv2d_16_sequences": lambda: conv2d_lstm(16, True),
          "conv1d_64_sequences": lambda: conv1d_lstm(64, True), "conv2d_32": lambda: conv2d_lstm(32, False)}


@pytest.mark.parametrize("name", MODELS)
def test_lstm_arena_is_predicted_byte_exact(name):
    model = MODELS[name]()
    randomize(model, seed=3)
    tflite = tflm_export.convert(model, samples(model))
    prediction = predict_arena_from_tflite(tflite)
    measured = find_min_arena(tflite, prediction.bytes, step=1, max_probes=40).bytes
    assert prediction.bytes == measured and prediction.exact, prediction
    estimate = estimate_arena(model, assume_trained=True)  # from the Keras graph: its lowering of the LSTM
    assert (estimate.bytes, estimate.exact) == (measured, True), estimate


@pytest.mark.parametrize("build", [lambda: zoo.kws_lstm(units=8), lambda: conv2d_lstm(16, False)],
                         ids=["kws_lstm", "conv2d_reshape_lstm"])
def test_lstm_arena_and_flash_are_exact_before_and_after_pruning(build):
    model = build()  # kws_lstm: at batch 1 the squeeze and expand between the Conv1D layers fold away
    randomize(model, seed=6)
    context = PruneContext.of(model)
    assert_exact(*predicted_and_measured(model, context=context))
    assert_exact(*predicted_and_measured(model, context.plan("MA", 0.5)[1], context))


def test_lowered_lstm_kernel_by_hand():
    # 24 inputs: sequence, 8 weights, 4 biases, int8 output state (8 B) and int16 cell state (16 B);
    # four scratch buffers of the cell state's size (2 B x 8 units) while the op runs
    from keras_cprune.deploy.lowering import micro_graph
    from keras_cprune.graph.reader import read_graph
    from tflm_export.micro.planner import planned_tensors, replay_allocations

    micro = micro_graph(read_graph(conv1d_lstm(8)), assume_trained=True)[0]
    op = next(o for o in micro.ops if o.op == "UNIDIRECTIONAL_SEQUENCE_LSTM")
    states = [micro.tensors[t] for t in op.inputs if t >= 0 and micro.tensors[t].variable]
    assert [(s.shape, s.nbytes) for s in states] == [((1, 8), 8), ((1, 8), 16)]
    assert len(op.inputs) == 24 and sum(t >= 0 for t in op.inputs) == 1 + 8 + 4 + 2
    scratch = [t.size_bytes for t in planned_tensors(micro) if "UNIDIRECTIONAL_SEQUENCE_LSTM/scratch" in t.name]
    assert scratch == [16] * 4
    assert replay_allocations(micro).unknown_ops == ()


@pytest.mark.parametrize("mode", ["PA", "FA", "MA"])
def test_pruned_conv2d_front_end_equals_the_zeroed_original(mode):
    model = conv2d_lstm(8, False)
    randomize(model, seed=4, scale=0.3)
    pruned, plan = pruned_and_plan(model, mode, 0.5, rule="all")
    kept = next(g.kept["conv"] for g in plan.groups if "conv" in g.kept)
    removed = sorted(set(range(6)) - set(kept))
    assert removed and pruned.get_layer("lstm").units == 8  # units stay; "conv2" is pinned by the Reshape
    zeroed = keras.models.clone_model(model)
    zeroed.set_weights(model.get_weights())
    kernel, bias = zeroed.get_layer("conv").get_weights()
    kernel[..., removed], bias[removed] = 0.0, 0.0  # relu(0) = 0: those channels carry nothing
    zeroed.get_layer("conv").set_weights([kernel, bias])
    x = samples(model, 4)
    np.testing.assert_allclose(pruned.predict(x, verbose=0), zeroed.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.predict(x, verbose=0), zeroed.predict(x, verbose=0), atol=1e-4)


def test_pruned_kws_lstm_slices_the_lstm_input_kernel_and_still_converts():
    model = zoo.kws_lstm(units=8)
    randomize(model, seed=5, scale=0.3)
    pruned, plan = pruned_and_plan(model, "PA", 0.5, rule="all")
    kept = list(next(g.kept["conv1"] for g in plan.groups if "conv1" in g.kept))
    assert len(kept) < 32
    kernel = model.get_layer("lstm").get_weights()[0]
    np.testing.assert_array_equal(pruned.get_layer("lstm").get_weights()[0], kernel[kept])
    info = read_model(tflm_export.convert(pruned, samples(pruned)))
    assert info.op_counts["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 1


def recurrent_model(layer, input_shape=(12, 6)):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, L.Dense(2, name="head")(layer(inputs)), name="m")


@pytest.mark.parametrize("layer,input_shape,words", [
    (lambda: L.GRU(4, name="gru_1"), (12, 6), ["GRU layer 'gru_1'", "no GRU kernel", "use keras.layers.LSTM"]),
    (lambda: L.SimpleRNN(4, name="rnn"), (12, 6), ["SimpleRNN layer 'rnn'", "use keras.layers.LSTM"]),
    (lambda: L.Bidirectional(L.LSTM(4), name="bi"), (12, 6), ["Bidirectional layer 'bi'", "unidirectional"]),
    (lambda: L.ConvLSTM1D(4, 3, name="clstm"), (12, 8, 2), ["ConvLSTM1D layer 'clstm'", "Conv1D layers, then"]),
    (lambda: L.RNN(L.LSTMCell(4), name="cell"), (12, 6), ["RNN layer 'cell'", "instead of RNN(cell)"]),
    (lambda: L.LSTM(4, activation="relu", name="l"), (12, 6), ["LSTM layer 'l'", "activation='relu'"]),
    (lambda: L.LSTM(4, return_state=True, name="l"), (12, 6), ["LSTM layer 'l'", "return_state=True"]),
    (lambda: L.LSTM(4, go_backwards=True, name="l"), (12, 6), ["LSTM layer 'l'", "go_backwards=True"]),
])
def test_recurrent_layers_tflm_cannot_run_are_named_with_the_fix(layer, input_shape, words):
    built = layer()
    if getattr(built, "return_state", False):
        inputs = keras.Input(input_shape)
        model = keras.Model(inputs, L.Dense(2)(built(inputs)[0]), name="m")
    else:
        model = recurrent_model(built, input_shape)
    with pytest.raises(ConversionError) as info:
        tflm_export.convert(model, np.zeros((2,) + input_shape, "float32"))
    assert all(word in str(info.value) for word in words), str(info.value)


def test_masked_lstm_is_refused_by_name():
    inputs = keras.Input((12, 6))
    x = L.LSTM(4, name="masked")(L.Masking(name="mask")(inputs))
    with pytest.raises(ConversionError, match="LSTM layer 'masked' gets a mask"):
        tflm_export.convert(keras.Model(inputs, L.Dense(2)(x)), samples(conv1d_lstm(), 2)[:, :12, :6])


def test_ops_the_converter_leaves_name_their_keras_layers(monkeypatch):
    # Without the twin, the Keras 3 LSTM's while loop leaves TensorList ops: named, with the layer
    monkeypatch.setattr(sys.modules["tflm_export.convert"], "lstm_layers", lambda model: [])
    with pytest.raises(ConversionError) as info:
        tflm_export.convert(conv1d_lstm(), samples(conv1d_lstm(), 2))
    assert "TensorListReserve" in str(info.value) and "from layer(s) 'lstm'" in str(info.value), str(info.value)

    inputs = keras.Input((4,))
    x = L.Lambda(lambda t: keras.ops.erf(t), name="erf_layer")(L.Dense(3, name="d")(inputs))
    with pytest.raises(ConversionError, match=r"op\(s\) Erf have no int8 TFLite builtin kernel, from layer\(s\) "
                                              r"'erf_layer'"):
        tflm_export.convert(keras.Model(inputs, L.Dense(2)(x)), np.random.rand(8, 4))


def test_float_ops_name_their_keras_layers():
    import tensorflow as tf

    model = conv1d_lstm()
    float_model = tf.lite.TFLiteConverter.from_keras_model(zoo.vgg(keras, (16, 16, 1), widths=(4,))).convert()
    outputs = read_model(float_model).float_op_outputs
    assert {op for op, _ in outputs} >= {"CONV_2D", "FULLY_CONNECTED"}
    names = {layer.name for layer in zoo.vgg(keras, (16, 16, 1), widths=(4,)).layers}
    found = _from_layers(names, (tensor for _, tensor in outputs))
    assert found.startswith(", from layer(s) ") and "conv" in found, (found, outputs)
    assert _from_layers({layer.name for layer in model.layers}, ["functional_1/lstm_1/while@__inference_f_12"]) == \
        ", from layer(s) 'lstm'"
