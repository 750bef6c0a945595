"""LSTM / GRU / SimpleRNN: hand-computed complexity, input-kernel slicing, equivalence with the
unpruned model whose removed filters are zeroed, and pin reasons of models with nothing to prune."""
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_cprune import analyze, prune
from keras_cprune.graph.dependency import build_dependencies
from keras_cprune.errors import PruningError
from keras_cprune.graph.reader import read_graph
from models import randomize
from planning import pruned_and_plan

T, F, UNITS = 6, 5, 4

# (layer, params, MACs, output shape), input (T=6, F=5), 4 units -- each worked out by hand:
RNN_CASES = [
    # 4 gates x (kernel 5x4 + recurrent 4x4 + bias 4) = 4 * 40; per step 4*4*(5+4) = 144 MACs, x 6 steps
    (lambda: keras.layers.LSTM(UNITS), 160, 864, (4,)),
    (lambda: keras.layers.LSTM(UNITS, return_sequences=True), 160, 864, (6, 4)),
    (lambda: keras.layers.LSTM(UNITS, use_bias=False), 144, 864, (4,)),
    # 3 gates x (4*9 + 2 bias rows x 4) = 3 * 44 with reset_after (the Keras default); 3*36 = 108 MACs/step
    (lambda: keras.layers.GRU(UNITS), 132, 648, (4,)),
    (lambda: keras.layers.GRU(UNITS, reset_after=False), 120, 648, (4,)),
    # 4*(5+4) + 4; 36 MACs per step
    (lambda: keras.layers.SimpleRNN(UNITS, return_sequences=True), 40, 216, (6, 4)),
]


@pytest.mark.parametrize("make,params,macs,out", RNN_CASES)
def test_recurrent_formulas(make, params, macs, out):
    inputs = keras.Input((T, F))
    model = keras.Model(inputs, make()(inputs))
    row = analyze(model).layers[0]
    assert (row.params, row.macs, row.output_shape, row.analysed) == (params, macs, out, True)
    assert row.params == model.count_params()
    assert row.act_bytes_int8 == int(np.prod(out))  # one step, or all 6 with return_sequences


def test_recurrent_int8_bytes_count_biases_as_int32():
    inputs = keras.Input((T, F))
    row = analyze(keras.Model(inputs, keras.layers.LSTM(UNITS)(inputs))).layers[0]
    assert row.weight_bytes_int8 == 144 + 4 * 16  # kernels 4*4*9 int8, biases 4*4 int32


def rnn_model(rnn, producer="conv", steps=12, features=3):
    inputs = keras.Input((steps, features))
    if producer == "conv":
        x = keras.layers.Conv1D(16, 3, activation="relu", name="producer")(inputs)
    else:
        x = keras.layers.Dense(16, activation="relu", name="producer")(inputs)
    x = rnn(name="rnn")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x), name="rnn_model")


CASES = {
    "conv_lstm": ("conv", lambda **kw: keras.layers.LSTM(8, **kw)),
    "conv_gru": ("conv", lambda **kw: keras.layers.GRU(8, **kw)),
    "conv_gru_reset_before": ("conv", lambda **kw: keras.layers.GRU(8, reset_after=False, **kw)),
    "conv_simple_rnn": ("conv", lambda **kw: keras.layers.SimpleRNN(8, **kw)),
    "dense_lstm_sequences": ("dense", lambda **kw: keras.layers.LSTM(8, return_sequences=True, **kw)),
}


def zeroed_copy(model, producer: str, removed: list):
    """A copy of ``model`` whose ``removed`` filters of ``producer`` have zero kernel and bias, so
    (relu(0) = 0) those channels carry exactly zero into the recurrent layer."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    kernel, bias = copy.get_layer(producer).get_weights()
    kernel[..., removed], bias[removed] = 0.0, 0.0
    copy.get_layer(producer).set_weights([kernel, bias])
    return copy


@pytest.mark.parametrize("case", CASES)
def test_pruned_recurrent_model_equals_the_zeroed_original(case):
    producer, rnn = CASES[case]
    model = rnn_model(rnn, producer)
    randomize(model, seed=3, scale=0.3)
    pruned, plan = pruned_and_plan(model, "PA", 0.5, rule="all")
    kept = next(g.kept["producer"] for g in plan.groups if "producer" in g.kept)
    removed = sorted(set(range(16)) - set(kept))
    assert len(removed) == 8 and pruned.get_layer("producer").output.shape[-1] == 8

    old, new = model.get_layer("rnn").get_weights(), pruned.get_layer("rnn").get_weights()
    np.testing.assert_array_equal(new[0], old[0][list(kept)])  # input-kernel rows of the kept channels
    for before, after in zip(old[1:], new[1:]):  # recurrent kernel and bias untouched
        np.testing.assert_array_equal(after, before)
    assert pruned.get_layer("rnn").units == 8

    x = np.random.default_rng(0).normal(size=(4,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    expected = zeroed_copy(model, "producer", removed).predict(x, verbose=0)
    np.testing.assert_allclose(pruned.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(model.predict(x, verbose=0), expected, atol=1e-3)  # the zeroed filters mattered
    assert analyze(pruned).params == pruned.count_params() == plan.after.params < plan.before.params


def test_recurrent_output_is_pinned_and_its_input_group_prunable():
    deps = build_dependencies(read_graph(rnn_model(lambda name: keras.layers.LSTM(8, name=name))))
    groups = {tuple(g.producers): g for g in deps.groups}
    assert groups[("producer",)].prunable and not groups[("head",)].prunable
    assert deps.pin_reasons["rnn"] == "recurrent units are not pruned"


def test_add_of_recurrent_units_pins_the_coupled_conv():
    inputs = keras.Input((10, 3))
    seq = keras.layers.LSTM(8, return_sequences=True, name="lstm")(inputs)
    conv = keras.layers.Conv1D(8, 1, name="conv")(inputs)
    x = keras.layers.Add(name="add")([seq, conv])
    deps = build_dependencies(read_graph(keras.Model(inputs, keras.layers.Dense(2, name="head")(x))))
    group = next(g for g in deps.groups if g.producers == ["conv"])
    assert not group.prunable
    assert deps.group_pin_reasons(group) == ["coupled with the output of LSTM layer 'lstm': recurrent units are not pruned"]


class Scale(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x


def nothing_prunable_message(model) -> str:
    with pytest.raises(PruningError) as info:
        prune(model)
    return str(info.value)


def test_nothing_prunable_names_each_layer_and_its_pin_reason():
    inputs = keras.Input((10, 3))
    a = keras.layers.Conv1D(8, 3, name="conv1")(inputs)
    b = keras.layers.Lambda(lambda t: t[..., ::-1], name="lam")(a)
    c = keras.layers.Conv1D(8, 1, name="conv2")(b)
    d = Scale(name="scale")(c)
    e = keras.layers.Conv1D(8, 3, groups=2, name="grouped")(d)
    shared = keras.layers.Conv1D(8, 1, name="shared")
    f = keras.layers.Bidirectional(keras.layers.LSTM(4), name="bi")(shared(shared(e)))
    message = nothing_prunable_message(keras.Model(inputs, keras.layers.Dense(2, name="out")(f), name="m"))
    assert message.startswith("Nothing in model 'm' can be pruned: 'conv1' (feeds Lambda layer 'lam'), "
                              "'conv2' (feeds Scale layer 'scale': custom layer), 'out' (model output), ")
    assert "'grouped' (grouped convolution, groups=2)" in message and "'shared' (shared layer)" in message
    assert "'bi' (Bidirectional wrapper: its recurrent layers are not pruned yet)" in message
    assert "pinned" in message and "register_layer" in message


def test_nothing_prunable_without_a_reason_for_a_layer_is_impossible():
    inputs = keras.Input((10, 3))
    x = keras.layers.Conv1D(8, 3, name="conv")(inputs)
    message = nothing_prunable_message(keras.Model(inputs, keras.layers.Softmax(name="sm")(x), name="m"))
    assert "'conv' (feeds Softmax layer 'sm': softmax mixes channels)" in message


LEGACY = """
import numpy as np, tf_keras as keras
from keras_cprune import analyze, apply_plan, plan_pruning
for make, params in [(lambda: keras.layers.LSTM(8, name="rnn"), 4 * (8 * 24 + 8)),
                     (lambda: keras.layers.GRU(8, name="rnn"), 3 * (8 * 24 + 16)),
                     (lambda: keras.layers.SimpleRNN(8, name="rnn"), 8 * 24 + 8)]:
    inputs = keras.Input((12, 3))
    x = keras.layers.Conv1D(16, 3, activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(make()(x)))
    assert analyze(model).layer("rnn").params == params == model.get_layer("rnn").count_params()
    plan = plan_pruning(model, "PA", 0.5, rule="all")
    pruned = apply_plan(model, plan)
    kept = list(next(g.kept["conv"] for g in plan.groups if "conv" in g.kept))
    zeroed = keras.models.clone_model(model)
    zeroed.set_weights(model.get_weights())
    kernel, bias = zeroed.get_layer("conv").get_weights()
    gone = sorted(set(range(16)) - set(kept))
    kernel[..., gone], bias[gone] = 0.0, 0.0
    zeroed.get_layer("conv").set_weights([kernel, bias])
    assert pruned.get_layer("rnn").get_weights()[0].shape[0] == 8
    x = np.random.default_rng(0).normal(size=(2, 12, 3)).astype("float32")
    np.testing.assert_allclose(pruned.predict(x, verbose=0), zeroed.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
print("legacy ok")
"""


@pytest.mark.slow  # minutes of CPU: runs with --slow (in CI after the fast set)
def test_recurrent_pruning_under_tf_keras():
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    root = os.path.dirname(os.path.dirname(__file__))
    result = subprocess.run([sys.executable, "-c", LEGACY], env=env, cwd=root, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0 and "legacy ok" in result.stdout, result.stdout[-2000:] + result.stderr[-3000:]
