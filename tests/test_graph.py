"""read_graph(): Sequential, Functional and nested models; clear errors on what it cannot read."""
import keras
import pytest

from keras_cprune.errors import ModelError, SubclassedModelError, UnbuiltModelError
from keras_cprune.graph.reader import read_graph


def test_sequential_chain_in_order():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="c"),
                              keras.layers.Flatten(name="f"), keras.layers.Dense(3, name="d")])
    graph = read_graph(model)
    assert [n.class_name for n in graph.nodes] == ["InputLayer", "Conv2D", "Flatten", "Dense"]
    conv = graph.node("c")
    assert graph.in_shapes(conv) == [(8, 8, 1)] and graph.out_shapes(conv) == [(6, 6, 2)]
    assert graph.tensors[conv.outputs[0]].consumers == ["f"]
    assert graph.outputs == graph.node("d").outputs


def test_nested_models_are_flattened_and_shared_layers_numbered():
    inner = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(5, 1, name="inner_conv")], name="inner")
    shared = keras.layers.Conv2D(3, 1, name="shared")
    inputs = keras.Input((4, 4, 3))
    x = shared(shared(inputs))
    out = keras.layers.Concatenate(name="cat")([x, inner(x)])
    graph = read_graph(keras.Model(inputs, out))
    names = [n.name for n in graph.nodes]
    assert names[1:] == ["shared", "shared#1", "inner_conv", "cat"]
    cat = graph.node("cat")
    assert [graph.tensors[k].producer for k in cat.inputs] == ["shared#1", "inner_conv"]


def test_not_a_model():
    with pytest.raises(ModelError, match="Expected `model` to be a built `keras.Model`.*Received: model=str"):
        read_graph("model.keras")


def test_unbuilt_sequential():
    with pytest.raises(UnbuiltModelError, match="keras.Input\\(shape=...\\)"):
        read_graph(keras.Sequential([keras.layers.Dense(3)]))


def test_subclassed_model():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(keras.ops.ones((1, 3)))
    with pytest.raises(SubclassedModelError, match="Functional.*or Sequential"):
        read_graph(net)
