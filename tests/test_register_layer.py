"""register_layer: a custom layer taught to the engine is priced, pruned and lowered like a built-in."""
import keras
import numpy as np
import pytest
from models import randomize

import keras_cprune
from keras_cprune import OpSpec, analyze, estimate_arena, prune, register_layer
from keras_cprune.graph.dependency import build_dependencies
from keras_cprune.errors import PruningError
from keras_cprune.graph.reader import read_graph
from keras_cprune.graph.layers import unregister_layer
from keras_cprune.pruning.context import PruneContext
from keras_cprune.pruning.rebuild import rebuild
from tflm_export import convert, find_min_arena, read_model
from tflm_export.micro.planner import align

L = keras.layers


class ScaledConv2D(keras.layers.Layer):
    """A same-padded convolution with a learned scale per filter: ``conv(x, kernel) * scale + bias``."""

    def __init__(self, filters, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = filters, (kernel_size, kernel_size)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=self.kernel_size + (input_shape[-1], self.filters), name="kernel")
        self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")
        self.scale = self.add_weight(shape=(self.filters,), initializer="ones", name="scale")

    def call(self, x):
        return keras.ops.conv(x, self.kernel, padding="same") * self.scale + self.bias

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size[0]}


def scaled_params(cfg, in_shapes, out_shapes):
    """Kernel kh*kw*in*filters, plus a bias and a scale per filter."""
    return int(np.prod(cfg["kernel_size"])) * in_shapes[0][-1] * out_shapes[0][-1] + 2 * out_shapes[0][-1]


def scaled_macs(cfg, in_shapes, out_shapes):
    h, w, filters = out_shapes[0]
    return h * w * filters * int(np.prod(cfg["kernel_size"])) * in_shapes[0][-1]


def lower_scaled(low, node, x, in_shape, out_shape):
    """The converter folds the scale and bias into one CONV_2D, filter (out, kh, kw, in)."""
    filt = (out_shape[-1],) + node.layer.kernel_size + (in_shape[-1],)
    return low.weighted("CONV_2D", node, x, filt, out_shape[-1])


SPEC = OpSpec("produce", scaled_params, scaled_macs, width_key="filters", lower=lower_scaled,
              slices={"kernel": {-2: "in", -1: "out"}, "bias": {0: "out"}, "scale": {0: "out"}})


@pytest.fixture
def registered():
    register_layer(ScaledConv2D, SPEC)
    yield
    unregister_layer(ScaledConv2D)


def scaled_model(seed=0):
    inputs = keras.Input((8, 8, 3))
    x = ScaledConv2D(6, name="scaled")(inputs)
    x = L.ReLU(name="relu")(x)
    x = L.Conv2D(4, 3, padding="same", name="conv")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, L.Dense(2, name="dense")(x), name="scaled_net")
    randomize(model, seed, scale=0.3)
    return model


def test_unregistered_custom_layer_is_pinned():
    model = scaled_model()
    assert PruneContext.of(model).deps.pin_reasons["scaled"] == "custom layer"
    pruned = prune(model, "PA", 0.5, rule="all")
    assert pruned.get_layer("scaled").filters == 6 and pruned.get_layer("conv").filters == 2
    inputs = keras.Input((8, 8, 3))
    alone = keras.Model(inputs, L.Dense(2, name="out")(L.Flatten()(ScaledConv2D(4, name="scaled")(inputs))), name="m")
    with pytest.raises(PruningError, match="'scaled' \\(custom layer\\)"):
        prune(alone)


def test_registered_layer_is_priced_by_its_formulas(registered):
    row = next(r for r in analyze(scaled_model()).layers if r.name == "scaled")
    # kernel 3*3*3*6 = 162, bias 6, scale 6; 8*8 positions * 6 filters * 27 MACs
    assert (row.params, row.macs, row.analysed) == (174, 10368, True)


def test_registered_layer_prunes_its_filters_and_the_next_conv_inputs(registered):
    model = scaled_model()
    before = [w.numpy().copy() for w in model.weights]
    context = PruneContext.of(model)
    assert "scaled" not in context.deps.pin_reasons
    _, removed = context.plan("PA", 0.5, rule="all")
    masked = rebuild(model, context.deps, removed, weights="mask")
    pruned = prune(model, "PA", 0.5, rule="all")
    scaled = pruned.get_layer("scaled")
    assert type(scaled) is ScaledConv2D and scaled.filters == 3
    assert tuple(scaled.kernel.shape) == (3, 3, 3, 3) and tuple(scaled.scale.shape) == (3,)
    assert tuple(pruned.get_layer("conv").kernel.shape) == (3, 3, 3, 2)
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(pruned.predict(x, verbose=0), masked.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert all(np.array_equal(w.numpy(), b) for w, b in zip(model.weights, before))
    # scaled 27*3 + 3 + 3, conv 9*3*2 + 2, dense 2*2 + 2
    assert pruned.count_params() == analyze(pruned).params == 87 + 56 + 6


def test_registered_layer_lowers_to_the_converters_conv_and_its_arena_is_exact():
    model = scaled_model()
    assert estimate_arena(model).approximated[0] == "scaled"  # unregistered: a placeholder op
    data = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype("float32")
    tflite = convert(model, data)
    assert read_model(tflite).ops == ("CONV_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED")
    register_layer(ScaledConv2D, SPEC)
    try:
        estimate = estimate_arena(model)  # not the schedule cached for the unregistered layer
    finally:
        unregister_layer(ScaledConv2D)
    assert estimate.exact, estimate.approximated
    assert find_min_arena(tflite).bytes == align(estimate.bytes)


def test_registration_is_by_exact_class_and_can_be_undone(registered):
    class Conv2D(ScaledConv2D):  # a subclass, named like the Keras layer
        pass

    inputs = keras.Input((8, 8, 3))
    x = Conv2D(4, name="look_alike")(inputs)
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(L.Conv2D(4, 3, name="keras_conv")(x))))
    assert build_dependencies(read_graph(model)).pin_reasons["look_alike"] == "custom layer"
    assert register_layer(Conv2D, SPEC) is None
    try:
        assert register_layer(Conv2D, SPEC) is SPEC
        assert "look_alike" not in build_dependencies(read_graph(model)).pin_reasons
        rows = {row.name: row for row in analyze(model).layers}
        # look_alike: 9*3*4 kernel + 4 bias + 4 scale; keras_conv keeps Conv2D's formula: 9*4*4 + 4
        assert (rows["look_alike"].params, rows["keras_conv"].params) == (116, 148)
    finally:
        assert unregister_layer(Conv2D) is SPEC
    assert unregister_layer(Conv2D) is None
    assert build_dependencies(read_graph(model)).pin_reasons["look_alike"] == "custom layer"
    assert keras_cprune.OpSpec is OpSpec and keras_cprune.register_layer is register_layer


@pytest.mark.parametrize("cls, spec, match", [
    (ScaledConv2D(4), SPEC, "`cls` to be a subclass of `keras.layers.Layer`.*Received: cls=<ScaledConv2D"),
    (int, SPEC, "`cls` to be a subclass.*Received: cls=<class 'int'>"),
    (ScaledConv2D, {"role": "produce"}, "`spec` to be a `keras_cprune.OpSpec`"),
    (ScaledConv2D, OpSpec("producer"), "Unknown `spec.role`.*Received: role='producer'"),
    (ScaledConv2D, OpSpec("produce", slices=SPEC.slices), "needs `width_key`.*Received: width_key=None; "
                                                         "arguments: \\['filters', 'kernel_size'\\]"),
    (ScaledConv2D, OpSpec("produce", width_key="units", slices=SPEC.slices), "Received: width_key='units'"),
    (ScaledConv2D, OpSpec("produce", width_key="filters"), "needs `slices`.*Received: slices=\\{\\}"),
    (ScaledConv2D, OpSpec("pass", slices={"scale": {0: "output"}}), "`spec.slices` of ScaledConv2D must map"),
    (ScaledConv2D, OpSpec("pass", macs=3), "`spec.macs` of ScaledConv2D must be a function"),
])
def test_bad_arguments_say_what_to_pass(cls, spec, match):
    with pytest.raises(PruningError, match=match):
        register_layer(cls, spec)
    assert unregister_layer(ScaledConv2D) is None


def test_slices_naming_no_weight_of_the_layer_fail_when_pruning():
    register_layer(ScaledConv2D, OpSpec("produce", width_key="filters", slices={"w": {-1: "out"}}))
    try:
        with pytest.raises(PruningError, match="No weight of ScaledConv2D layer 'scaled' is sliced by its output "
                                               "channels: its weights are \\['kernel', 'bias', 'scale'\\]"):
            prune(scaled_model(), "PA", 0.5, rule="all")
    finally:
        unregister_layer(ScaledConv2D)


def test_another_registration_is_another_architecture_for_the_schedule_cache():
    """The converter schedule is cached per architecture: a spec registered again (another
    lowering) must not reuse the schedule matched with the first one."""
    from dataclasses import replace

    from keras_cprune.deploy.converter_order import fingerprint

    model = scaled_model()
    prints = []
    for spec in (SPEC, replace(SPEC, lower=lambda *args: lower_scaled(*args))):
        register_layer(ScaledConv2D, spec)
        try:
            prints.append(fingerprint(read_graph(model)))
        finally:
            unregister_layer(ScaledConv2D)
    prints.append(fingerprint(read_graph(model)))
    assert len(set(prints)) == 3


class PlainConv(keras.layers.Layer):
    """A 1x1 convolution whose kernel is named ``w``, filters first: ``w`` has shape (filters, in)."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters

    def build(self, input_shape):
        self.w = self.add_weight(shape=(self.filters, input_shape[-1]), name="w")

    def call(self, x):
        return keras.ops.einsum("bhwi,oi->bhwo", x, self.w)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def test_l1_importance_scores_the_weight_the_slices_name_on_its_output_axis():
    spec = OpSpec("produce", lambda cfg, i, o: i[0][-1] * o[0][-1], lambda cfg, i, o: 0, width_key="filters",
                  slices={"w": {0: "out", 1: "in"}})
    inputs = keras.Input((4, 4, 3))
    x = PlainConv(4, name="plain")(inputs)
    model = keras.Model(inputs, L.Conv2D(2, 1, name="conv")(L.ReLU()(x)))
    # rows = filters: L1 norms 3, 0.3, 30, 0.03 -> PA 0.5 keeps filters 0 and 2
    model.get_layer("plain").w.assign(np.array([[1, 1, 1], [.1, .1, .1], [10, 10, 10], [.01, .01, .01]], "float32"))
    register_layer(PlainConv, spec)
    try:
        pruned = prune(model, "PA", 0.5, rule="all", importance="l1")
        np.testing.assert_array_equal(pruned.get_layer("plain").w.numpy(), [[1, 1, 1], [10, 10, 10]])
        np.testing.assert_array_equal(pruned.get_layer("conv").kernel.numpy()[0, 0],
                                      model.get_layer("conv").kernel.numpy()[0, 0][[0, 2]])
    finally:
        unregister_layer(PlainConv)


class Gate(keras.layers.Layer):
    """A learned gain per channel: ``x * gate``, gate of shape (channels,)."""

    def build(self, input_shape):
        self.gate = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gate")

    def call(self, x):
        return x * self.gate


def gated_model(seed=0):
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = Gate(name="gate")(x)
    x = L.ReLU(name="relu")(x)
    model = keras.Model(inputs, L.Conv2D(4, 3, padding="same", name="conv2")(x), name="gated")
    randomize(model, seed, scale=0.3)
    return model


def test_a_pass_spec_leaving_a_per_channel_weight_unsliced_is_refused_with_the_fix():
    """Not a Keras ValueError from the rebuild ("weight shape (4,) is not compatible with (8,)")."""
    model = gated_model()
    register_layer(Gate, OpSpec("pass"))
    try:
        for call in (lambda: read_graph(model), lambda: prune(model, "PA", 0.5, rule="all")):
            with pytest.raises(PruningError, match=r"Weight 'gate' of Gate layer 'gate' has shape \(8,\).*channels "
                                                   r"\(8\).*slices=\{'gate': \{0: 'out'\}\}"):
                call()
    finally:
        unregister_layer(Gate)


def test_a_pass_spec_slicing_its_per_channel_weight_prunes_it_equivalently():
    model = gated_model()
    register_layer(Gate, OpSpec("pass", params=lambda cfg, i, o: o[0][-1], slices={"gate": {0: "out"}}))
    try:
        context = PruneContext.of(model)
        plan, removed = context.plan("PA", 0.5, rule="all")
        masked = rebuild(model, context.deps, removed, weights="mask")
        pruned = prune(model, "PA", 0.5, rule="all")
        kept = np.flatnonzero(masked.get_layer("conv1").kernel.numpy()[0, 0, 0] != 0)
    finally:
        unregister_layer(Gate)
    assert tuple(pruned.get_layer("gate").gate.shape) == (4,)
    np.testing.assert_array_equal(pruned.get_layer("gate").gate.numpy(), model.get_layer("gate").gate.numpy()[kept])
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(pruned.predict(x, verbose=0), masked.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    # conv1 27*4 + 4, gate 4, conv2 36*4 + 4
    assert pruned.count_params() == plan.after.params == 112 + 4 + 148
