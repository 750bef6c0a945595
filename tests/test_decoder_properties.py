"""Property-based tests: random encoder-decoder (U-Net-like) graphs, issue 25.

Every public step on a legitimate model gives a result or a project error (`CPruneError`) whose
message names a layer, never an internal error; the arena prediction is exact unless the model
has a layer without a TFLM lowering (a nearest UpSampling2D converts to TILE), and then that
layer is named. Each example is a graph seed (printed by hypothesis on failure: rebuild it with
``tests.models.random_decoder_model(keras, seed)``). ``pytest --slow`` runs 100 examples instead
of 4 (50 instead of 2 for the export property, whose examples each convert and run a model).
"""
import keras
import numpy as np
from hypothesis import given, note, settings
from hypothesis import strategies as st

import tflm_export
from keras_cprune import PruneConfig, analyze, estimate_arena, prune
from keras_cprune.deploy.arena import estimate_deployment
from keras_cprune.errors import CPruneError
from keras_cprune.graph.clone import as_trained
from keras_cprune.pruning.context import PruneContext
from keras_cprune.pruning.rebuild import rebuild
from models import random_decoder_model, randomize
from tflm_export.micro.planner import align


def _nearest(model) -> set:
    """The layers without a TFLM lowering: nearest UpSampling2D (TILE)."""
    return {layer.name for layer in model.layers if type(layer).__name__ == "UpSampling2D"
            and layer.interpolation == "nearest"}


def _assert_names_a_layer(exc: Exception, model) -> None:
    assert isinstance(exc, CPruneError), f"internal error {type(exc).__name__}: {exc}"
    assert any(layer.name in str(exc) for layer in model.layers[1:]), f"no layer named in: {exc}"


def _assert_exact_or_named(estimate, model) -> None:
    """Exact, or approximated where the model has a layer without a lowering, which is named first."""
    nearest = _nearest(model)
    assert estimate.exact == (not nearest), estimate.approximated
    assert estimate.exact or estimate.approximated[0] in nearest, estimate.approximated


@settings(max_examples=max(4, settings().max_examples // 2))  # the loaded profile's (conftest)
@given(seed=st.integers(0, 2 ** 31 - 1), ratio=st.floats(0.05, 0.9), mode=st.sampled_from(["PA", "FA", "MA"]))
def test_random_decoders_prune_equivalently_and_predict_or_name_the_layer(seed, ratio, mode):
    note(f"graph: random_decoder_model(keras, seed={seed}); prune mode={mode} ratio={ratio}")
    model = random_decoder_model(keras, seed)
    _assert_exact_or_named(estimate_arena(model), model)  # as built: all-zero biases and offsets dropped
    randomize(model, seed=seed % 1000)
    assert analyze(model).params == model.count_params()
    try:
        pruned = prune(model, mode, ratio)
    except Exception as exc:  # e.g. nothing prunable: then the message names the layers
        _assert_names_a_layer(exc, model)
        return
    context = PruneContext.of(model)
    removed = context.choose(mode, ratio, PruneConfig())[0]
    masked = rebuild(model, context.deps, removed, weights="mask")
    x = np.random.default_rng(seed).normal(size=(2,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    np.testing.assert_allclose(pruned.predict(x, verbose=0), masked.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
    assert pruned.count_params() == analyze(pruned).params <= model.count_params()
    assert pruned.output_shape == model.output_shape
    _assert_exact_or_named(estimate_deployment(context.graph, assume_trained=True, schedule=context.schedule)[0], model)
    estimate, _ = estimate_deployment(context.graph, context.deps.pruned_shapes(removed), assume_trained=True,
                                      schedule=context.schedule)
    named = {layer.name for layer in model.layers} | {context.schedule.reason}
    assert estimate.exact or estimate.approximated and set(estimate.approximated) <= named, estimate.approximated


@settings(max_examples=max(2, settings().max_examples // 4))
@given(seed=st.integers(0, 2 ** 31 - 1), ratio=st.floats(0.0, 0.8), fresh=st.booleans())
def test_random_decoders_export_to_tflm_with_the_predicted_arena(seed, ratio, fresh):
    """Converted and run on TFLM, the arena is as predicted (to TFLM's 16-byte step) where the
    prediction is exact: the model as built (``fresh``: all-zero biases and BatchNorm offsets),
    or a trained-looking pruned variant predicted with the unpruned model's converter schedule.
    A model TFLM cannot run fails with a project error naming the layer."""
    note(f"graph: random_decoder_model(keras, seed={seed}); " + ("as built" if fresh else f"prune MA ratio={ratio}"))
    model = random_decoder_model(keras, seed)
    if fresh:
        predicted, variant = estimate_arena(model), model
    else:
        randomize(model, seed=seed % 1000)
        context = PruneContext.of(model)
        removed = context.choose("MA", ratio, PruneConfig())[0] if ratio else set()
        predicted, _ = estimate_deployment(context.graph, context.deps.pruned_shapes(removed), assume_trained=True,
                                           schedule=context.schedule)
        variant = as_trained(rebuild(model, context.deps, removed))
    data = np.random.default_rng(seed).uniform(0, 1, (8,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    try:
        report = tflm_export.verify(tflm_export.convert(variant, data), latency_runs=0)
    except Exception as exc:  # documented in docs/ERRORS.md
        _assert_names_a_layer(exc, model)
        assert not predicted.exact
        note(f"documented failure: {exc}")
        return
    if predicted.exact:
        assert report.arena.bytes == align(predicted.bytes)
