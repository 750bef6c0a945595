"""prune(): masked equivalence, shapes and counts, plans, the PA/FA/MA modes and bad input."""
import json

import keras
import numpy as np
import pytest

from keras_cprune import PruningPlan, analyze, apply_plan, prune
from keras_cprune.errors import PlanError, PruningError
from keras_cprune.pruner import PruneContext
from keras_cprune.rebuild import rebuild
from models import ARCHITECTURES, random_model, randomize, vgg


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
    assert plan.after["params"] < plan.before["params"]
    assert new.count_params() == plan.after["params"] == analyze(new).params


@pytest.mark.parametrize("seed", range(12))
def test_masked_equivalence_on_random_graphs(seed):
    model = random_model(keras, seed)
    randomize(model, seed=seed)
    for criterion in ("l1", "random"):
        masked, pruned, plan, new = masked_vs_pruned(model, "PA", 0.4, rule="all", importance=criterion, seed=seed)
        np.testing.assert_allclose(pruned, masked, rtol=1e-5, atol=1e-5, err_msg=f"seed={seed} {criterion}")
        assert new.count_params() == plan.after["params"] < plan.before["params"]


def test_hand_counted_vgg_pruning():
    """conv0 16->8, conv1 32->16, conv2 64->32, fc 32->16 with ratio 0.5 on every group."""
    model = vgg(keras)
    pruned, plan = prune(model, "PA", 0.5, rule="all", return_plan=True)
    widths = {l.name: l.get_config().get("filters", l.get_config().get("units")) for l in pruned.layers}
    assert (widths["conv0"], widths["conv1"], widths["conv2"], widths["fc"], widths["logits"]) == (8, 16, 32, 16, 10)
    expected = (9 * 1 * 8 + 8) + 4 * 8 + (9 * 8 * 16 + 16) + 4 * 16 + (9 * 16 * 32 + 32) + 4 * 32 \
        + (3 * 3 * 32 * 16 + 16) + (16 * 10 + 10)
    assert pruned.count_params() == expected == plan.after["params"]
    assert type(pruned) is type(model)
    assert [l.name for l in pruned.layers] == [l.name for l in model.layers]
    assert pruned.output_shape == model.output_shape


def test_keeps_highest_l1_filters_and_copies_their_weights():
    inputs = keras.Input((4, 4, 1))
    conv = keras.layers.Conv2D(4, 1, name="conv")
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(keras.layers.Flatten()(conv(inputs))))
    kernel = np.array([1.0, -5.0, 0.1, 3.0], dtype="float32").reshape(1, 1, 1, 4)
    conv.set_weights([kernel, np.arange(4, dtype="float32")])
    pruned, plan = prune(model, "PA", 0.5, rule="all", return_plan=True)
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
    tiny = prune(model, "PA", 0.99, rule="all", min_filters=3)
    assert min(tiny.get_layer(f"conv{i}").filters for i in range(3)) == 3


def test_reinitialize_gives_fresh_weights_of_the_pruned_shape():
    model = vgg(keras)
    randomize(model, seed=1, scale=5.0)
    pruned = prune(model, "PA", 0.5, rule="all", reinitialize=True)
    kernel = pruned.get_layer("conv1").get_weights()[0]
    assert kernel.shape == (3, 3, 8, 16) and np.abs(kernel).max() < 1.0  # glorot, not the copied N(0, 5)


def test_plan_json_roundtrip_and_apply_plan():
    model = ARCHITECTURES["inverted_residual"](keras)
    randomize(model)
    pruned, plan = prune(model, "MA", 0.5, return_plan=True)
    again = PruningPlan.from_json(plan.to_json())
    assert again == plan
    replayed = apply_plan(model, again)
    x = np.ones((1, 16, 16, 3), "float32")
    np.testing.assert_allclose(replayed.predict(x, verbose=0), pruned.predict(x, verbose=0), rtol=1e-6)
    assert "Parameters" in plan.summary(print_fn=None)
    assert json.loads(plan.to_json())["mode"] == "MA"


def test_apply_plan_to_other_architecture_fails_clearly():
    _, plan = prune(vgg(keras), "PA", 0.5, return_plan=True)
    with pytest.raises(PlanError, match="expects"):
        apply_plan(vgg(keras, widths=(8, 32, 64)), plan)
    with pytest.raises(PlanError, match="does not have"):
        apply_plan(ARCHITECTURES["residual"](keras), plan)


def test_modes_pick_different_layers_on_vgg16_style_net():
    """PA goes for the deep wide layers, MA for the early high-resolution ones (as in the paper)."""
    model = vgg(keras, input_shape=(64, 64, 3), widths=(16, 32, 64, 128, 256))
    chosen = {}
    for mode in ("PA", "MA"):
        _, plan = prune(model, mode, 0.5, return_plan=True)
        chosen[mode] = {p for g in plan.groups if g.kept_channels < g.channels for p in g.producers}
    assert "conv4" in chosen["PA"] and "conv0" not in chosen["PA"]
    assert "conv0" in chosen["MA"] and "conv4" not in chosen["MA"]


@pytest.mark.parametrize("kwargs,match", [
    ({"ratio": 1.0}, "ratio.*\\[0, 1\\).*Received: ratio=1.0"),
    ({"ratio": -0.1}, "ratio"),
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
