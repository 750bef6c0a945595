"""Channel groups: which layers' channels are coupled, and what is pinned."""
import keras
import numpy as np

from keras_cprune.graph.dependency import build_dependencies
from keras_cprune.graph.reader import read_graph
from models import concat_branches, inverted_residual, residual, vgg


def groups_by_producers(model):
    deps = build_dependencies(read_graph(model))
    return deps, {tuple(g.producers): g for g in deps.groups}


def test_residual_adds_couple_the_stem_and_block_outputs():
    deps, groups = groups_by_producers(residual(keras))
    coupled = groups[("stem", "r0b", "r1b")]
    assert len(coupled.units) == 8 and coupled.prunable
    assert {"add0", "add1", "gap", "logits"} <= set(coupled.layers)
    assert groups[("r0a",)].prunable and not groups[("logits",)].prunable  # model output is pinned


def test_concat_keeps_offsets_and_flatten_expands_per_channel():
    deps, groups = groups_by_producers(concat_branches(keras))
    graph = deps.graph
    cat_units = deps.units[graph.node("cat").outputs[0]]
    a_units = deps.units[graph.node("a").outputs[0]]
    b_units = deps.units[graph.node("b").outputs[0]]
    assert np.array_equal(cat_units, np.concatenate([a_units, b_units]))
    flat = deps.units[graph.node("flatten").outputs[0]]
    cat2 = deps.units[graph.node("cat2").outputs[0]]
    assert len(flat) == 7 * 7 * 24 and np.array_equal(flat[:24], cat2) and np.array_equal(flat[24:48], cat2)


def test_depthwise_and_squeeze_excite_couple_expand_dw_and_se():
    deps, groups = groups_by_producers(inverted_residual(keras))
    expand = groups[("expand", "se_expand")]  # the SE multiply couples its gate with the dw output
    assert {"dw", "se_pool", "se_mul", "project"} <= set(expand.layers)
    assert groups[("stem", "project")].prunable  # residual add
    dw_units = deps.units[deps.graph.node("dw").outputs[0]]
    assert np.array_equal(dw_units, deps.units[deps.graph.node("expand").outputs[0]])


def test_depth_multiplier_repeats_input_channels():
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 1, name="c")(inputs)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="out")(x))
    deps = build_dependencies(read_graph(model))
    c, dw = (deps.units[deps.graph.node(n).outputs[0]] for n in ("c", "dw"))
    assert np.array_equal(dw, np.repeat(c, 2))


def test_pins_custom_lambda_grouped_and_shared_layers():
    inputs = keras.Input((6, 6, 4))
    a = keras.layers.Conv2D(4, 1, name="before_lambda")(inputs)
    b = keras.layers.Lambda(lambda t: t[..., ::-1], name="reverse")(a)
    c = keras.layers.Conv2D(4, 1, name="before_grouped")(b)
    d = keras.layers.Conv2D(4, 3, groups=2, padding="same", name="grouped")(c)
    shared = keras.layers.Conv2D(4, 1, name="shared")
    e = shared(shared(d))
    out = keras.layers.Conv2D(2, 1, name="out")(e)
    deps, groups = groups_by_producers(keras.Model(inputs, out))
    prunable = {p for g in deps.groups if g.prunable for p in g.producers}
    assert prunable == set()
    assert deps.pin_reasons["reverse"] == "Lambda is not channel-wise"
    assert deps.pin_reasons["shared"] == "shared layer"


def test_vgg_groups_one_per_conv_and_fc():
    deps, groups = groups_by_producers(vgg(keras))
    assert sorted(p for g in deps.groups if g.prunable for p in g.producers) == ["conv0", "conv1", "conv2", "fc"]
