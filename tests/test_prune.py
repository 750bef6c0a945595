"""prune(): masked equivalence, shapes and counts, plans, the PA/FA/MA modes and bad input."""
import json

import keras
import numpy as np
import pytest

from keras_cprune import PruningPlan, analyze, apply_plan, prune
from keras_cprune.errors import PlanError, PruningError
from keras_cprune.pruning.context import PruneContext
from keras_cprune.pruning.rebuild import rebuild
from models import ARCHITECTURES, random_model, randomize, vgg
from planning import pruned_and_plan


def masked_vs_pruned(model, mode, ratio, **kwargs):
    """Outputs of the original with the removed filters zeroed, and of the pruned model."""
    context = PruneContext.of(model)
    plan, removed = context.plan(mode, ratio, **kwargs)
    masked = rebuild(model, context.deps, removed, weights="mask")
    pruned = prune(model, mode, ratio, **kwargs)
    x = np.random.default_rng(1).normal(size=(3,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    return masked.predict(x, verbose=0), pruned.predict(x, verbose=0), plan, pruned


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("mode", ["PA", "FA", "MA"])
def test_masked_equivalence_on_block_architectures(arch, mode):
    model = ARCHITECTURES[arch](keras)
    randomize(model, seed=3)
    masked, pruned, plan, new = masked_vs_pruned(model, mode, 0.5, rule="all")
    np.testing.assert_allclose(pruned, masked, rtol=1e-5, atol=1e-5)
    assert plan.after.params < plan.before.params
    assert new.count_params() == plan.after.params == analyze(new).params


@pytest.mark.parametrize("seed", range(12))
def test_masked_equivalence_on_random_graphs(seed):
    model = random_model(keras, seed)
    randomize(model, seed=seed)
    for criterion in ("l1", "random"):
        masked, pruned, plan, new = masked_vs_pruned(model, "PA", 0.4, rule="all", importance=criterion, seed=seed)
        np.testing.assert_allclose(pruned, masked, rtol=1e-5, atol=1e-5, err_msg=f"seed={seed} {criterion}")
        assert new.count_params() == plan.after.params < plan.before.params


def test_hand_counted_vgg_pruning():
    """conv0 16->8, conv1 32->16, conv2 64->32, fc 32->16 with ratio 0.5 on every group."""
    model = vgg(keras)
    pruned, plan = pruned_and_plan(model, "PA", 0.5, rule="all")
    widths = {l.name: l.get_config().get("filters", l.get_config().get("units")) for l in pruned.layers}
    assert (widths["conv0"], widths["conv1"], widths["conv2"], widths["fc"], widths["logits"]) == (8, 16, 32, 16, 10)
    expected = (9 * 1 * 8 + 8) + 4 * 8 + (9 * 8 * 16 + 16) + 4 * 16 + (9 * 16 * 32 + 32) + 4 * 32 \
        + (3 * 3 * 32 * 16 + 16) + (16 * 10 + 10)
    assert pruned.count_params() == expected == plan.after.params
    assert type(pruned) is type(model)
    assert [l.name for l in pruned.layers] == [l.name for l in model.layers]
    assert pruned.output_shape == model.output_shape


def test_keeps_highest_l1_filters_and_copies_their_weights():
    inputs = keras.Input((4, 4, 1))
    conv = keras.layers.Conv2D(4, 1, name="conv")
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(keras.layers.Flatten()(conv(inputs))))
    kernel = np.array([1.0, -5.0, 0.1, 3.0], dtype="float32").reshape(1, 1, 1, 4)
    conv.set_weights([kernel, np.arange(4, dtype="float32")])
    pruned, plan = pruned_and_plan(model, "PA", 0.5, rule="all")
    assert plan.groups[0].kept["conv"] == (1, 3)
    new_kernel, new_bias = pruned.get_layer("conv").get_weights()
    np.testing.assert_array_equal(new_kernel.ravel(), [-5.0, 3.0])
    np.testing.assert_array_equal(new_bias, [1.0, 3.0])


def test_sequential_stays_sequential_and_input_model_untouched():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, name="c"),
                              keras.layers.Flatten(), keras.layers.Dense(4, name="d"), keras.layers.Dense(2)])
    before = [w.copy() for w in model.get_weights()]
    config = model.get_config()
    pruned = prune(model, "FA", 0.5, rule="all")
    assert isinstance(pruned, keras.Sequential) and pruned is not model
    assert model.get_config() == config
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert pruned.get_layer("c").filters == 4 and model.get_layer("c").filters == 8


def test_round_to_and_min_filters():
    model = vgg(keras, widths=(16, 24, 40))
    pruned = prune(model, "PA", 0.3, rule="all", round_to=8)
    assert [pruned.get_layer(f"conv{i}").filters for i in range(3)] == [16, 24, 32]
    tiny = prune(model, "PA", 0.99, rule="all", min_filters=3, min_keep=0)
    assert min(tiny.get_layer(f"conv{i}").filters for i in range(3)) == 3


def test_round_to_holds_for_every_layer_of_a_concatenated_group():
    """Add(A, Concatenate(B, C)) couples A's 16 channels to B's 8 and C's 8: each keeps a multiple."""
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(16, 1, name="a")(inputs)
    cat = keras.layers.Concatenate()([keras.layers.Conv2D(8, 1, name="b")(inputs),
                                      keras.layers.Conv2D(8, 1, name="c")(inputs)])
    x = keras.layers.Add()([a, cat])
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    randomize(model, seed=5)
    for ratio in (0.3, 0.5, 0.7):  # 0.3 of 16 rounds back up: B and C cannot both lose 2 of 8
        pruned = prune(model, "PA", ratio, rule="all", round_to=4)
        widths = [pruned.get_layer(n).filters for n in "abc"]
        assert all(w % 4 == 0 for w in widths) and widths[0] == widths[1] + widths[2], (ratio, widths)
        assert widths[0] < 16 or ratio < 0.5


@pytest.mark.parametrize("criterion", ["l2", "bn_gamma", "callable"])
def test_importance_criteria_keep_the_highest_scoring_filters(criterion):
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(4, 1, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    model.get_layer("conv").set_weights([np.array([3.0, -1.0, 0.5, 2.0], "float32").reshape(1, 1, 1, 4),
                                         np.zeros(4, "float32")])
    bn = model.get_layer("bn")
    bn.set_weights([np.array([0.1, 5.0, 4.0, 0.2], "float32")] + bn.get_weights()[1:])
    importance = (lambda layer: np.array([0.0, 1.0, 2.0, 3.0])) if criterion == "callable" else criterion
    _, plan = pruned_and_plan(model, "PA", 0.5, rule="all", importance=importance)
    expected = {"l2": (0, 3), "bn_gamma": (1, 2), "callable": (2, 3)}[criterion]
    assert plan.groups[0].kept["conv"] == expected
    assert plan.groups[0].removed["conv"] == tuple(sorted({0, 1, 2, 3} - set(expected)))


def test_importance_callable_with_wrong_length_names_the_layer():
    with pytest.raises(PruningError, match="for layer 'conv.*shape \\("):
        prune(vgg(keras), "PA", 0.5, rule="all", importance=lambda layer: np.ones(3))


def test_numpy_ratio_is_accepted():
    model = vgg(keras)
    assert prune(model, "PA", np.float32(0.5), rule="all").count_params() == prune(model, "PA", 0.5, rule="all").count_params()


def test_reinitialize_gives_fresh_weights_of_the_pruned_shape():
    model = vgg(keras)
    randomize(model, seed=1, scale=5.0)
    pruned = prune(model, "PA", 0.5, rule="all", reinitialize=True)
    kernel = pruned.get_layer("conv1").get_weights()[0]
    assert kernel.shape == (3, 3, 8, 16) and np.abs(kernel).max() < 1.0  # glorot, not the copied N(0, 5)


def test_plan_json_roundtrip_and_apply_plan():
    model = ARCHITECTURES["inverted_residual"](keras)
    randomize(model)
    pruned, plan = pruned_and_plan(model, "MA", 0.5)
    again = PruningPlan.from_json(plan.to_json())
    assert again == plan
    replayed = apply_plan(model, again)
    x = np.ones((1, 16, 16, 3), "float32")
    np.testing.assert_allclose(replayed.predict(x, verbose=0), pruned.predict(x, verbose=0), rtol=1e-6)
    assert "Parameters" in plan.summary(print_fn=None)
    assert json.loads(plan.to_json())["mode"] == "MA"


def test_apply_plan_to_other_architecture_fails_clearly():
    _, plan = pruned_and_plan(vgg(keras), "PA", 0.5)
    with pytest.raises(PlanError, match="expects"):
        apply_plan(vgg(keras, widths=(8, 32, 64)), plan)
    with pytest.raises(PlanError, match="does not have"):
        apply_plan(ARCHITECTURES["residual"](keras), plan)


@pytest.mark.parametrize("kept,match", [([], "keeps channels \\[\\] of layer 'conv0'"),
                                        ([0, 99], "\\[0, 16\\)")])
def test_edited_plan_with_bad_channel_indices_fails_clearly(kept, match):
    model = vgg(keras)
    _, plan = pruned_and_plan(model, "PA", 0.5)
    data = json.loads(plan.to_json())
    group = next(g for g in data["groups"] if "conv0" in g["kept"])
    group["kept"]["conv0"] = kept
    with pytest.raises(PlanError, match=match):
        apply_plan(model, PruningPlan.from_dict(data))


def vgg16(input_shape=(64, 64, 3)):
    """VGG-16's 13 convolutions (2-2-3-3-3 at 64-128-256-512-512 filters, max pools) and 3 Dense."""
    inputs = keras.Input(input_shape)
    x, index = inputs, 0
    for repeats, width in ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)):
        for _ in range(repeats):
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"conv{index}")(x)
            index += 1
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(512, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(512, activation="relu", name="fc2")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))


@pytest.mark.slow  # minutes of CPU: runs with --slow (in CI after the fast set)
def test_modes_pick_different_layers_on_vgg16():
    """PA goes for the deep wide layers, FA for the MAC-heavy middle, MA for the early
    high-resolution ones (as in the paper)."""
    chosen = {}
    for mode in ("PA", "FA", "MA"):
        _, plan = pruned_and_plan(vgg16(), mode, 0.5)
        chosen[mode] = {p for g in plan.groups if g.kept_channels < g.channels for p in g.producers}
    assert {"conv10", "conv11", "conv12"} <= chosen["PA"] and not chosen["PA"] & {"conv0", "conv1", "conv2"}
    assert {"conv0", "conv1"} <= chosen["MA"] and not chosen["MA"] & {"conv10", "conv11", "conv12", "fc1", "fc2"}
    assert {"conv2", "conv5"} <= chosen["FA"] and not chosen["FA"] & {"conv0", "conv12", "fc1", "fc2"}
    assert chosen["PA"] != chosen["FA"] != chosen["MA"] != chosen["PA"]


@pytest.mark.parametrize("kwargs,match", [
    ({"ratio": 1.0}, "ratio.*\\[0, 1\\).*Received: ratio=1.0"),
    ({"ratio": -0.1}, "ratio"),
    ({"ratio": True}, "ratio"),
    ({"mode": "XA"}, "Unknown pruning mode 'XA'"),
    ({"min_filters": 0}, "min_filters.*0 filters"),
    ({"round_to": 0}, "round_to"),
    ({"importance": "taylor"}, "Unknown importance criterion 'taylor'"),
    ({"rule": "top"}, "Unknown selection rule 'top'"),
])
def test_bad_arguments(kwargs, match):
    args = {"mode": "PA", "ratio": 0.5, **kwargs}
    with pytest.raises(PruningError, match=match):
        prune(vgg(keras), args.pop("mode"), args.pop("ratio"), **args)


def test_nothing_prunable():
    inputs = keras.Input((4,))
    with pytest.raises(PruningError, match="Nothing in model .* can be pruned"):
        prune(keras.Model(inputs, keras.layers.Dense(3)(inputs)))
