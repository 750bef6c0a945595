"""The arena and flash predicted in the TFLite converter's op order, against the real TFLM runtime.

Each case converts the unpruned model once for its schedule (`schedule.converter_schedule`),
predicts pruned variants from the Keras graph with it, and measures those variants converted to
int8 on the TFLM runtime: the arena to its 16-byte measuring step, flash within 1% of the
flatbuffer. ``pytest --slow`` runs 300 random graphs instead of 4.
"""
import keras
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from keras_cprune import analyze, estimate_arena, prune, zoo
from keras_cprune.deploy.lowering import micro_graph
from keras_cprune.errors import ModelError, TFLMRuntimeError
from keras_cprune.graph.clone import as_trained
from keras_cprune.graph.reader import read_graph
from keras_cprune.pruning.context import PruneContext
from models import random_branched_model, randomize
from tflm_checks import assert_exact, predicted_and_measured

L = keras.layers


def shortcut_created_last():
    """The issue's minimal case: a 1x1 strided shortcut created after the main branch (ResNet-8)."""
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="x")(inputs)
    y = L.Conv2D(16, 3, strides=2, padding="same", name="y1")(x)
    y = L.Conv2D(16, 3, padding="same", name="y2")(y)
    s = L.Conv2D(16, 1, strides=2, name="s")(x)
    return keras.Model(inputs, L.Add(name="add")([s, y]), name="shortcut_last")


def test_shortcut_created_after_the_main_branch_is_exact_pruned_or_not():
    model = shortcut_created_last()
    randomize(model)
    context = PruneContext.of(model)
    assert context.schedule.exact and context.schedule.flatbuffer_bytes > 0
    for ratio in (0.0, 0.5):
        removed = context.plan("PA", ratio, rule="all")[1] if ratio else set()
        assert_exact(*predicted_and_measured(model, removed, context))


def three_way_add():
    inputs = keras.Input((8, 8, 2))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    branches = [L.Conv2D(8, 1, name=f"b{i}")(x) for i in range(3)]
    return keras.Model(inputs, L.ReLU(name="relu")(L.Add(name="add3")(branches)), name="add3")


def test_an_n_way_add_is_the_converters_chain_of_binary_adds():
    model = three_way_add()
    context = PruneContext.of(model)
    ops = micro_graph(context.graph, schedule=context.schedule)[0].ops
    assert [op.op for op in ops].count("ADD") == 2
    assert_exact(*predicted_and_measured(model, context=context))


@settings(max_examples=max(4, settings().max_examples // 2) if settings().max_examples < 50 else
          settings().max_examples * 3 // 2)  # fast set 4; --slow: 75 (nightly), 300 (slow)
@given(seed=st.integers(0, 2 ** 31 - 1), ratio=st.floats(0.0, 0.8), mode=st.sampled_from(["PA", "FA", "MA"]),
       per_channel_dense=st.booleans())
def test_random_branched_graphs_in_random_creation_order_are_exact(seed, ratio, mode, per_channel_dense):
    note(f"graph: random_branched_model(keras, seed={seed}); plan {mode} ratio={ratio}; "
         f"per_channel_dense={per_channel_dense}")
    model = random_branched_model(keras, seed)
    randomize(model, seed=seed % 1000)
    context = PruneContext.of(model, per_channel_dense=per_channel_dense)
    removed = context.plan(mode, ratio)[1] if ratio else set()
    try:
        measured = predicted_and_measured(model, removed, context)
    except TFLMRuntimeError as exc:  # random weights can leave a branch all-zero after ReLU: calibration gives it
        assume("near-zero quantization scale" not in str(exc))  # a ~0 scale and TFLM aborts; nothing to measure
        raise
    assert_exact(*measured)


def one_d(kind):
    inputs = keras.Input((32, 6))
    if kind == "conv":
        x = L.Conv1D(8, 3, padding="same", activation="relu", name="c1")(inputs)
        x = L.MaxPooling1D(2, name="pool")(x)
        x = L.Conv1D(8, 3, strides=2, name="c2")(x)
        x = L.GlobalAveragePooling1D(name="gap")(x)
    else:
        x = L.DepthwiseConv1D(3, padding="same", name="dw")(inputs)
        x = L.SeparableConv1D(8, 3, activation="relu", name="sep")(x)
        x = L.AveragePooling1D(2, name="pool")(x)
        x = L.Flatten(name="flat")(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(x), name=f"one_d_{kind}")


def upsampling(kind):
    inputs = keras.Input((8, 8, 3))
    x = L.SeparableConv2D(8, 3, padding="same", depth_multiplier=2, name="sep")(inputs)
    if kind == "transpose":
        x = L.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu", name="up")(x)
    else:
        x = L.UpSampling2D(2, interpolation="bilinear", name="up")(x)
    return keras.Model(inputs, L.Conv2D(2, 1, name="out")(x), name=f"up_{kind}")


@pytest.mark.parametrize("build", [lambda: one_d("conv"), lambda: one_d("separable"), lambda: upsampling("transpose"),
                                   lambda: upsampling("bilinear")], ids=["conv1d-pool1d", "depthwise-separable1d",
                                                                         "conv2dtranspose", "upsampling-bilinear"])
def test_1d_transposed_and_upsampling_layers_are_exact(build):
    model = build()
    randomize(model, seed=1)
    context = PruneContext.of(model)
    for ratio in (0.0, 0.5):
        removed = context.plan("PA", ratio, rule="all")[1] if ratio else set()
        assert_exact(*predicted_and_measured(model, removed, context))


def test_nearest_upsampling_is_approximate_and_named():
    """UpSampling2D(nearest) converts to TILE, which TFLM has no kernel for."""
    inputs = keras.Input((8, 8, 3))
    x = L.UpSampling2D(2, name="nearest")(L.Conv2D(4, 3, name="c")(inputs))
    estimate = estimate_arena(keras.Model(inputs, L.Conv2D(2, 1, name="out")(x)))
    assert not estimate.exact and "nearest" in estimate.approximated


def test_unconvertible_models_fall_back_to_keras_order_and_say_so(monkeypatch):
    import sys

    from keras_cprune.deploy import converter_order as schedule
    from keras_cprune.errors import ConversionError

    module = sys.modules["tflm_export.convert"]
    monkeypatch.setattr(schedule, "_SCHEDULES", {})  # schedules are cached by architecture

    def fail(*args, **kwargs):
        raise ConversionError("no converter here")

    monkeypatch.setattr(module, "convert", fail)
    estimate = estimate_arena(three_way_add())
    assert not estimate.exact and "converter schedule unavailable" in " ".join(estimate.approximated)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "mobilenet_v1_vww" else n
                                  for n in sorted(zoo.MLPERF_TINY)])
def test_mlperf_tiny_models_are_exact_before_and_after_pruning(name):
    model = zoo.MLPERF_TINY[name]()
    randomize(model)
    context = PruneContext.of(model)
    assert_exact(*predicted_and_measured(model, context=context))
    assert_exact(*predicted_and_measured(model, context.plan("MA", 0.5)[1], context))


@pytest.mark.parametrize("build", [zoo.fc_autoencoder, zoo.ds_cnn, lambda: one_d("separable")],
                         ids=["fc_autoencoder", "ds_cnn", "flatten-dense"])
def test_dense_quantized_per_tensor_is_exact_before_and_after_pruning(build):
    """``per_channel_dense=False`` as `tflm_export.convert`'s: no per-unit multipliers in the arena."""
    model = build()
    randomize(model, seed=2)
    context = PruneContext.of(model, per_channel_dense=False)
    for ratio in (0.0, 0.5):
        removed = context.choose("PA", ratio, rule="all")[0]
        assert_exact(*predicted_and_measured(model, removed, context))
    if build is zoo.fc_autoencoder:  # 128-unit Dense layers: 8 B a unit of multipliers and shifts
        per_channel = estimate_arena(model, assume_trained=True).bytes
        assert estimate_arena(model, assume_trained=True, per_channel_dense=False).bytes < per_channel / 3


def test_free_input_dimensions_need_an_input_shape():
    inputs = keras.Input((None, None, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, L.Conv2D(4, 1, name="head")(x))
    for call in (lambda: prune(model, "PA", 0.5), lambda: analyze(model), lambda: estimate_arena(model)):
        with pytest.raises(ModelError, match=r"free input dimensions \(None, None, 3\).*input_shape=\(96, 96, 3\)"):
            call()
    pruned = prune(model, "PA", 0.5, rule="all", input_shape=(16, 16, 3))
    assert pruned.get_layer("conv").filters == 4 and tuple(pruned.inputs[0].shape[1:]) == (16, 16, 3)
    assert analyze(model, input_shape=(16, 16, 3)).macs == 16 * 16 * (8 * 27 + 4 * 8)
    with pytest.raises(ModelError, match="input_shape"):
        analyze(model, input_shape=(16, 3))


def fresh_decoder(upsample):
    """A decoder as built, before training: its transposed conv's bias is all zero, which the
    converter drops, and then it cannot fuse the ReLU (issue 25)."""
    inputs = keras.Input((8, 8, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="enc")(inputs)
    if upsample:
        x = L.UpSampling2D(2, interpolation=upsample, name="up")(x)
    x = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu", name="tconv")(x)
    return keras.Model(inputs, L.Conv2D(3, 1, name="head")(x), name=f"decoder_{upsample}")


@pytest.mark.parametrize("upsample", [None, "bilinear", "nearest"])
def test_a_fresh_transposed_convs_unfused_relu_is_predicted_as_converted_now_and_once_trained(upsample):
    import numpy as np

    from tflm_export import convert, find_min_arena
    from tflm_export.micro.planner import align

    model = fresh_decoder(upsample)
    now, trained = estimate_arena(model), estimate_arena(model, assume_trained=True)
    if upsample == "nearest":  # TILE: no TFLM kernel, no flatbuffer to measure
        assert not now.exact and not trained.exact and now.approximated[0] == trained.approximated[0] == "up"
        return
    assert now.exact and trained.exact, (now.approximated, trained.approximated)
    x = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype("float32")
    assert find_min_arena(convert(model, x)).bytes == align(now.bytes)
    assert find_min_arena(convert(as_trained(keras.models.clone_model(model)), x)).bytes == align(trained.bytes)


def test_models_differing_only_in_a_layer_setting_have_their_own_schedule(monkeypatch):
    """The schedule cache key holds every layer setting: an LSTM's ``unroll`` is not a formula
    attribute (and may convert to other ops); each model gets its own schedule, both fused and exact."""
    from keras_cprune.deploy import converter_order

    monkeypatch.setattr(converter_order, "_SCHEDULES", {})

    def rnn(unroll, name):
        inputs = keras.Input((6, 4), name="series")
        return keras.Model(inputs, L.Dense(2, name="head")(L.LSTM(5, unroll=unroll, name="lstm")(inputs)), name=name)

    loop, unrolled = rnn(False, "rnn_loop"), rnn(True, "rnn_unrolled")
    assert converter_order.fingerprint(read_graph(loop)) != converter_order.fingerprint(read_graph(unrolled))
    figures = [estimate_arena(model) for model in (loop, unrolled)]
    assert [(figure.exact, figure.approximated) for figure in figures] == [(True, ())] * 2
    assert len(converter_order._SCHEDULES) == 2


@pytest.mark.parametrize("center", [True, False])
def test_a_fresh_batchnorms_zero_offset_is_predicted_dropped_now_and_added_once_trained(center):
    """A BatchNorm after a Concatenate is not folded: MUL by its scale, ADD its offset, which the
    converter leaves out while it is all zero (beta and the moving mean of a fresh layer)."""
    import numpy as np

    from tflm_export import convert, find_min_arena, read_model
    from tflm_export.micro.planner import align

    inputs = keras.Input((8, 8, 3), name="image")
    x = L.Concatenate(name="cat")([L.Conv2D(4, 3, padding="same", name="a")(inputs), L.Conv2D(4, 1, name="b")(inputs)])
    x = L.BatchNormalization(center=center, name="bn")(x)
    model = keras.Model(inputs, L.Conv2D(2, 1, name="head")(x), name=f"bn_center_{center}")
    x = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype("float32")
    fresh, trained = convert(model, x), convert(as_trained(keras.models.clone_model(model)), x)
    assert read_model(fresh).ops.count("ADD") == 0 and read_model(trained).ops.count("ADD") == 1
    now, later = estimate_arena(model), estimate_arena(model, assume_trained=True)
    assert now.exact and later.exact, (now.approximated, later.approximated)
    assert (find_min_arena(fresh).bytes, find_min_arena(trained).bytes) == (align(now.bytes), align(later.bytes))


def test_a_transposed_conv_keeping_its_input_shape_reads_the_shape_of_its_input():
    """Stride 1 and as many filters as input channels: the converter's output shape is SHAPE of
    the input, not SHAPE-STRIDED_SLICE-PACK. A pruned variant whose widths differ would take the
    other form: it is listed as approximated."""
    inputs = keras.Input((8, 8, 3), name="image")
    x = L.Conv2D(6, 3, padding="same", name="c1")(inputs)
    x = L.Conv2DTranspose(6, 3, padding="same", activation="relu", name="tconv")(x)
    model = keras.Model(inputs, L.Conv2D(2, 1, name="head")(x), name="tconv_same_shape")
    randomize(model)
    context = PruneContext.of(model)
    assert context.schedule.exact, context.schedule.reason
    assert_exact(*predicted_and_measured(model, context=context))
    assert_exact(*predicted_and_measured(model, context.plan("PA", 0.5, rule="all")[1], context))  # 3 and 3 filters
    c1 = next(group for group in context.deps.groups if group.producers == ["c1"])
    shapes = context.deps.pruned_shapes(set(c1.units[:2].tolist()))
    estimate = micro_graph(context.graph, shapes, assume_trained=True, schedule=context.schedule)
    assert estimate[3] == ("tconv",)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("trained", [False, True])
def test_a_batchnorm_after_a_transposed_conv_is_folded_into_it_and_its_relu_fused(use_bias, trained):
    """Folded into the filter and bias (none while bias and offset are all zero); the ReLU after
    it fuses even then, unlike after a transposed conv that lost its zero bias."""
    import numpy as np

    from tflm_export import convert, find_min_arena, read_model
    from tflm_export.micro.planner import align

    inputs = keras.Input((8, 8, 3), name="image")
    x = L.Conv2DTranspose(5, 3, strides=2, padding="same", use_bias=use_bias, name="tconv")(
        L.Conv2D(4, 3, padding="same", name="enc")(inputs))
    x = L.ReLU(name="relu")(L.BatchNormalization(name="bn")(x))
    model = keras.Model(inputs, L.Conv2D(2, 1, name="head")(x), name="tconv_bn")
    if trained:
        randomize(model)
    tflite = convert(model, np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype("float32"))
    assert read_model(tflite).ops == ("CONV_2D", "SHAPE", "STRIDED_SLICE", "PACK", "TRANSPOSE_CONV", "CONV_2D")
    estimate = estimate_arena(model)
    assert estimate.exact, estimate.approximated
    assert find_min_arena(tflite).bytes == align(estimate.bytes)


@pytest.mark.parametrize("first, second", [(None, None), (6.0, 6.0), (None, 6.0)], ids=["relu-relu", "relu6-relu6",
                                                                                         "relu-relu6"])
def test_a_relu_of_a_relu_is_one_op(first, second):
    """The converter keeps one of two equal ReLUs in a row (a decoder's Conv2DTranspose(relu) then
    ReLU, before training: the transposed conv cannot fuse it); ReLU then ReLU6 stay two ops."""
    import numpy as np

    from tflm_export import convert, find_min_arena, read_model
    from tflm_export.micro.planner import align

    inputs = keras.Input((8, 8, 3), name="image")
    x = L.Concatenate(name="cat")([L.Conv2D(4, 3, padding="same", name="a")(inputs), L.Conv2D(4, 1, name="b")(inputs)])
    x = L.ReLU(second, name="r2")(L.ReLU(first, name="r1")(x))
    model = keras.Model(inputs, L.Conv2D(2, 1, name="head")(x), name="relus")
    randomize(model)
    tflite = convert(model, np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype("float32"))
    assert len(read_model(tflite).ops) == 5 + (first != second)
    estimate = estimate_arena(model)
    assert estimate.exact, estimate.approximated
    assert find_min_arena(tflite).bytes == align(estimate.bytes)


def test_fresh_batchnorms_of_one_width_share_their_scale_constant():
    """Two unfolded BatchNorms as built scale by the same 1 / sqrt(1 + eps) throughout: the
    converter stores that constant once, one tensor less in TFLM's tail."""
    import numpy as np

    from tflm_export import convert, find_min_arena
    from tflm_export.micro.flatbuffer import graph_from_tflite
    from tflm_export.micro.planner import align

    inputs = keras.Input((8, 8, 3), name="image")
    branches = []
    for i in range(2):
        x = L.Concatenate(name=f"cat{i}")([L.Conv2D(4, 3, padding="same", name=f"a{i}")(inputs),
                                           L.Conv2D(4, 1, name=f"b{i}")(inputs)])
        branches.append(L.BatchNormalization(name=f"bn{i}")(x))
    model = keras.Model(inputs, L.Conv2D(2, 1, name="head")(L.Add(name="add")(branches)), name="two_bns")
    tflite = convert(model, np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype("float32"))
    converted = graph_from_tflite(tflite)
    muls = [op for op in converted.ops if op.op == "MUL"]
    assert len(muls) == 2 and muls[0].inputs[1] == muls[1].inputs[1]
    estimate = estimate_arena(model)
    assert estimate.exact, estimate.approximated
    assert find_min_arena(tflite).bytes == align(estimate.bytes)


def test_a_schedule_of_another_lowering_gives_an_approximate_estimate_not_a_crash():
    """The schedule matched for the trained model has no op for the RELU a fresh transposed conv
    cannot fuse: given to the fresh lowering anyway, it is replaced by the Keras order, and said."""
    model = fresh_decoder(None)
    context = PruneContext.of(model)  # its schedule is of the trained-looking lowering
    estimate = micro_graph(context.graph, assume_trained=False, schedule=context.schedule)
    assert "converter schedule of another lowering (6 ops, not 7)" in estimate[3]


def test_a_relu_after_a_convs_fused_relu_is_no_op_even_when_the_conv_has_other_users():
    import numpy as np

    from tflm_export import convert, find_min_arena, read_model
    from tflm_export.micro.planner import align

    inputs = keras.Input((8, 8, 3), name="image")
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    y = L.Conv2D(2, 1, name="h1")(L.ReLU(name="relu")(x))
    model = keras.Model(inputs, L.Add(name="add")([y, L.Conv2D(2, 1, name="h2")(x)]), name="relu_twice")
    randomize(model)
    tflite = convert(model, np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype("float32"))
    assert read_model(tflite).ops == ("CONV_2D", "CONV_2D", "CONV_2D", "ADD")
    estimate = estimate_arena(model)
    assert estimate.exact, estimate.approximated
    assert find_min_arena(tflite).bytes == align(estimate.bytes)
