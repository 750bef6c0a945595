"""The same checks under tf_keras (Keras 2). Runs only with TF_USE_LEGACY_KERAS=1 (see test_tf_keras.py)."""
import numpy as np
import pytest
import tf_keras as keras

from keras_cprune import analyze, apply_plan, prune
from layer_cases import CASES
from keras_cprune.pruning.context import PruneContext
from keras_cprune.pruning.rebuild import rebuild
from models import ARCHITECTURES, randomize, vgg


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_masked_equivalence_tf_keras(arch):
    model = ARCHITECTURES[arch](keras)
    randomize(model, seed=2)
    context = PruneContext.of(model)
    plan, removed = context.plan("FA", 0.5, rule="all")
    masked = rebuild(model, context.deps, removed, weights="mask")
    pruned = apply_plan(model, plan)
    x = np.random.default_rng(0).normal(size=(2,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    np.testing.assert_allclose(pruned.predict(x, verbose=0), masked.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert pruned.count_params() == plan.after.params < plan.before.params
    assert isinstance(pruned, keras.Model) and type(pruned).__module__.startswith("tf_keras")


@pytest.mark.parametrize("ctor", [keras.applications.MobileNetV2, keras.applications.ResNet50,
                                  keras.applications.DenseNet121], ids=lambda c: c.__name__)
def test_applications_tf_keras(ctor):
    model = ctor(weights=None, input_shape=(64, 64, 3), classes=10)
    assert analyze(model).params == model.count_params()
    pruned = prune(model, "PA", 0.5)
    assert pruned.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0).shape == (1, 10)
    assert analyze(pruned).params == pruned.count_params() < model.count_params()


def test_sequential_stays_sequential_tf_keras():
    model = keras.Sequential([keras.layers.Conv2D(8, 3, input_shape=(8, 8, 1), name="c"),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    pruned = prune(model, "PA", 0.5, rule="all")
    assert isinstance(pruned, keras.Sequential) and pruned.get_layer("c").filters == 4
    assert model.get_layer("c").filters == 8
    assert vgg(keras).count_params() == analyze(vgg(keras)).params


@pytest.mark.parametrize("make,shape,params,macs,out", CASES)
def test_layer_formulas_tf_keras(make, shape, params, macs, out):
    inputs = keras.Input(shape)
    model = keras.Model(inputs, make(keras)(inputs))
    row = analyze(model).layers[0]
    assert (row.params, row.macs, row.output_shape, row.analysed) == (params, macs, out, True)
    assert row.params == model.count_params()


def test_published_macs_tf_keras():
    assert analyze(keras.applications.ResNet50(weights=None)).macs == pytest.approx(3.858e9, rel=0.01)
    assert analyze(keras.applications.MobileNetV2(weights=None)).macs == pytest.approx(300e6, rel=0.02)
