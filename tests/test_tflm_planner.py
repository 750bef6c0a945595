"""TFLM arena prediction: hand-checked GreedyMemoryPlanner cases, then the real runtime.

The runtime tests convert small Keras models to int8, find the smallest ``arena_size`` that
``tflite_micro.runtime`` accepts by bisection in a subprocess (TFLM can crash on arenas that
are too small, a crash counts as "too small") and compare with the prediction.
"""
import numpy as np
import pytest
from models import randomize

from tflm_export.micro.flatbuffer import graph_from_tflite
from tflm_export.micro.op_graph import MicroGraph, MicroOp, MicroTensor
from tflm_export.micro.planner import (PlannedTensor, align, greedy_arena_bytes, greedy_offsets, planned_tensors,
                                       predict_arena, predict_arena_from_tflite, replay_allocations)


# --------------------------------------------------------------------------- planner unit tests
def test_chain_reuses_memory_of_dead_buffers():
    # b (200 -> 208 bytes) is placed first; c and a each overlap only b, so both sit on it.
    tensors = [PlannedTensor(100, 0, 1), PlannedTensor(200, 1, 2), PlannedTensor(100, 2, 3)]
    assert greedy_offsets(tensors) == [208, 0, 208]
    assert greedy_arena_bytes(tensors) == 320


def test_sizes_are_rounded_up_to_16_bytes():
    assert greedy_arena_bytes([PlannedTensor(1, 0, 0)]) == 16
    assert greedy_arena_bytes([PlannedTensor(1, 0, 1), PlannedTensor(17, 1, 2)]) == 48
    assert greedy_arena_bytes([PlannedTensor(1, 0, 0), PlannedTensor(17, 1, 1)]) == 32


def test_equal_sizes_place_the_buffer_added_last_first():
    assert greedy_offsets([PlannedTensor(64, 0, 1), PlannedTensor(64, 1, 2)]) == [64, 0]


def test_first_fit_uses_a_gap_between_placed_buffers():
    # m at 0 (alive at 1 only), n on top of it; p fits below n; o fits between p and n.
    m, n, o, p = (PlannedTensor(80, 1, 1), PlannedTensor(48, 0, 1), PlannedTensor(32, 0, 0),
                  PlannedTensor(32, 0, 0))
    assert greedy_offsets([m, n, o, p]) == [0, 80, 32, 0]
    assert greedy_arena_bytes([m, n, o, p]) == 128


def test_random_plans_never_overlap_buffers_alive_together():
    rng = np.random.default_rng(0)
    for _ in range(50):
        starts = rng.integers(0, 10, 12)
        tensors = [PlannedTensor(int(rng.integers(1, 300)), int(a), int(a + rng.integers(0, 4)))
                   for a in starts]
        offsets, top = greedy_offsets(tensors), greedy_arena_bytes(tensors)
        spans = [(o, o + align(t.size_bytes)) for o, t in zip(offsets, tensors)]
        for i, (a, b) in enumerate(zip(tensors, spans)):
            assert b[0] % 16 == 0 and b[1] <= top
            for c, d in zip(tensors[i + 1:], spans[i + 1:]):
                if a.first_op <= c.last_op and c.first_op <= a.last_op:
                    assert b[1] <= d[0] or d[1] <= b[0]


def residual_graph():
    """input(0) -conv-> 1 -conv-> 2 ; add(1, 2) -> 3 (output); tensors 4.. are weights."""
    act = MicroTensor((1, 4, 4, 8))
    weights = MicroTensor((8, 3, 3, 8), constant=True, quant_channels=8)
    bias = MicroTensor((8,), itemsize=4, constant=True, quant_channels=8)
    ops = (MicroOp("CONV_2D", (0, 4, 5), (1,)), MicroOp("CONV_2D", (1, 4, 5), (2,)),
           MicroOp("ADD", (1, 2), (3,)))
    return MicroGraph((act,) * 4 + (weights, bias), ops, (0,), (3,))


def test_lifetimes_of_inputs_outputs_and_skip_connections():
    lifetimes = [(t.first_op, t.last_op) for t in planned_tensors(residual_graph())]
    assert lifetimes == [(0, 1), (1, 3), (2, 3), (3, 3)]  # weights are not planned
    replay = replay_allocations(residual_graph())
    assert replay.head_bytes == 3 * 128  # the skip tensor, op output and add output
    assert replay.peak_op == 2 and replay.per_op[2] == ("ADD", 384, 384)
    figure = predict_arena(residual_graph())
    assert (figure.source, figure.bytes, figure.head_bytes, figure.peak_op, figure.peak) == \
        ("predicted", replay.bytes, 3 * 128, 2, "ADD")
    assert figure.peak_tensors == (1, 2, 3)  # the skip tensor, the second conv's output, the add's output


def test_mean_scratch_buffers_live_only_during_their_op():
    graph = MicroGraph((MicroTensor((1, 4, 4, 8)), MicroTensor((2,), 4, constant=True, quant_channels=0),
                        MicroTensor((1, 8))), (MicroOp("MEAN", (0, 1), (2,)),), (0,), (2,))
    scratch = planned_tensors(graph)[2:]
    assert [(t.size_bytes, t.first_op, t.last_op) for t in scratch] == [(32, 1, 1), (16, 1, 1),
                                                                        (8, 1, 1)]


# --------------------------------------------------------------------------- real runtime
def measured_arena(path):
    """Smallest arena_size (bytes, 1-byte steps) with which the runtime allocates and invokes."""
    from tflm_export.runtime.runner import find_min_arena

    data = open(path, "rb").read()
    return find_min_arena(data, predict_arena_from_tflite(data).bytes, step=1, max_probes=40).bytes


def build(name, size):
    import keras
    from keras import layers as L

    i = keras.Input((size, size, 8 if name == "inverted_residual" else 3))
    if name == "conv_chain":
        x = L.Conv2D(8, 3, padding="same", activation="relu")(i)
        x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
        x = L.Conv2D(8, 3)(x)
    elif name == "conv_pool_flatten_dense":
        x = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, padding="same")(i)))
        x = L.MaxPooling2D()(L.Conv2D(12, 3, padding="same", activation="relu")(L.MaxPooling2D()(x)))
        x = L.Dense(10)(L.Flatten()(x))
    elif name == "residual":
        x = L.Conv2D(8, 3, padding="same", activation="relu")(i)
        y = L.Conv2D(8, 3, padding="same")(L.Conv2D(8, 3, padding="same", activation="relu")(x))
        x = L.ReLU()(L.Add()([x, y]))
    elif name == "inverted_residual":  # expand, depthwise, squeeze-excite, project, separable
        y = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(24, 1)(i)))
        y = L.ReLU(6.0)(L.DepthwiseConv2D(3, padding="same")(y))
        s = L.GlobalAveragePooling2D(keepdims=True)(y)
        s = L.Conv2D(24, 1, activation="sigmoid")(L.Conv2D(4, 1, activation="relu")(s))
        x = L.Add()([i, L.Conv2D(8, 1)(L.Multiply()([y, s]))])
        x = L.SeparableConv2D(16, 3, padding="same", activation="relu")(x)
    elif name == "concat_branches":
        a = L.Conv2D(4, 1, activation="relu")(i)
        b = L.Conv2D(6, 3, padding="same", activation="relu")(i)
        c = L.AveragePooling2D(3, strides=1, padding="same")(i)
        x = L.Conv2D(8, 1)(L.Concatenate()([a, b, c]))
    elif name == "gap_head":
        x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(i)
        x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
        x = L.Softmax()(L.Dense(5)(L.GlobalAveragePooling2D()(x)))
    return keras.Model(i, x)


def to_int8(model, seed=0):
    """Full-int8 TFLite bytes of ``model`` with random weights (non-zero biases are kept)."""
    from tflm_export import convert

    randomize(model, seed)
    return convert(model, np.random.default_rng(seed).uniform(-1, 1, (4, *model.inputs[0].shape[1:])))


ARCHITECTURES = ["conv_chain", "conv_pool_flatten_dense", "residual", "inverted_residual",
                 "concat_branches", "gap_head"]


@pytest.fixture(scope="module")
def tflite_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tflm_planner")
    for name in ARCHITECTURES:
        for size in (16, 24):
            (folder / f"{name}_{size}.tflite").write_bytes(to_int8(build(name, size)))
    return folder


@pytest.mark.parametrize("size", [16, 24])
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_prediction_equals_the_measured_minimal_arena(tflite_dir, name, size):
    path = str(tflite_dir / f"{name}_{size}.tflite")
    prediction = predict_arena_from_tflite(open(path, "rb").read())
    measured = measured_arena(path)
    assert prediction.bytes == measured, (
        f"{name}_{size}: predicted {prediction.bytes} B, measured {measured} B "
        f"({100 * (prediction.bytes - measured) / measured:+.2f}%): {prediction}")
    assert prediction.exact and prediction.approximated == ()
    assert prediction.head_bytes + prediction.tail_bytes <= prediction.bytes
    from keras_cprune import estimate_arena  # the same, from the Keras graph without converting

    assert estimate_arena(build(name, size), assume_trained=True).bytes == measured


def test_a_bigger_input_grows_only_the_planner_part(tflite_dir):
    small, big = (predict_arena_from_tflite((tflite_dir / f"residual_{s}.tflite").read_bytes())
                  for s in (16, 24))
    assert big.tail_bytes == small.tail_bytes
    assert big.head_bytes == small.head_bytes * 24 * 24 // (16 * 16)


def test_dense_only_model_is_predicted_conservatively_within_2_percent(tmp_path):
    # Tiny model: the kernels' temporary tensors during Prepare set the minimum. TFLM lets the
    # FULLY_CONNECTED per-channel arrays overwrite their dead bytes (modeled, see the MLP test).
    import keras

    inputs = keras.Input((16,))
    path = tmp_path / "dense.tflite"
    path.write_bytes(to_int8(keras.Model(inputs, keras.layers.Dense(12)(inputs))))
    prediction = predict_arena_from_tflite(path.read_bytes())
    measured = measured_arena(str(path))
    assert replay_allocations(graph_from_tflite(path.read_bytes())).binding == "prepare"
    assert measured <= prediction.bytes <= measured * 1.02


@pytest.mark.parametrize("blocks,width,inputs,units", [(1, 128, 64, 64), (3, 16, 24, 10),
                                                       (2, 7, 13, 9), (1, 11, 36, 2), (0, 0, 9, 2),
                                                       (1, 10, 3, 1)])
def test_batchnorm_folded_mlp_is_predicted_byte_exact(tmp_path, blocks, width, inputs, units):
    # TF >= 2.21 quantizes FULLY_CONNECTED weights per channel (units > 1; 1 unit: per tensor).
    # Prepare writes the per-channel multiplier/shift arrays to the tail after its temp tensors,
    # over the temp bytes no longer read, so the minimal arena is below "temps + arrays".
    import keras

    L = keras.layers
    x = i = keras.Input((inputs,))
    for _ in range(blocks):
        x = L.ReLU()(L.BatchNormalization()(L.Dense(width)(x)))
    path = tmp_path / "mlp.tflite"
    path.write_bytes(to_int8(keras.Model(i, L.Dense(units)(x))))
    prediction = predict_arena_from_tflite(path.read_bytes())
    assert prediction.bytes == measured_arena(str(path)), prediction


def test_unreadable_bytes_raise_a_model_file_error():
    from keras_cprune.errors import ModelFileError

    with pytest.raises(ModelFileError, match="tflite flatbuffer"):
        predict_arena_from_tflite(b"not a flatbuffer")

