"""Property-based tests: random Functional graphs from the supported layer set.

Each example is a graph seed (printed by hypothesis on failure: rebuild it with
``tests.models.random_model(keras, seed)``). ``pytest --slow`` runs 200 examples instead of 8
(50 instead of 3 for the TFLM export property, whose examples each convert and run a model).
"""
import keras
import numpy as np
from hypothesis import given, note, settings
from hypothesis import strategies as st

from keras_cprune import analyze, prune
from keras_cprune.pruning.context import PruneContext
from keras_cprune.pruning.rebuild import rebuild
from models import random_model, randomize


@given(seed=st.integers(0, 2 ** 31 - 1), ratio=st.floats(0.05, 0.9), mode=st.sampled_from(["PA", "FA", "MA"]),
       rule=st.sampled_from(["mean", "coverage", "all"]))
def test_random_graphs_analyze_and_prune_equivalently(seed, ratio, mode, rule):
    note(f"graph: random_model(keras, seed={seed}); prune mode={mode} ratio={ratio} rule={rule}")
    model = random_model(keras, seed)
    randomize(model, seed=seed % 1000)
    assert analyze(model).params == model.count_params()
    context = PruneContext.of(model)
    plan, removed = context.plan(mode, ratio, rule=rule)
    masked = rebuild(model, context.deps, removed, weights="mask")
    pruned = rebuild(model, context.deps, removed)
    x = np.random.default_rng(seed).normal(size=(2,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    np.testing.assert_allclose(pruned.predict(x, verbose=0), masked.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert pruned.count_params() == plan.after.params == analyze(pruned).params <= plan.before.params
    assert pruned.output_shape == model.output_shape


@settings(max_examples=max(3, settings().max_examples // 4))  # the loaded profile's (conftest)
@given(seed=st.integers(0, 2 ** 31 - 1), ratio=st.floats(0.0, 0.8))
def test_random_graphs_export_to_tflm_with_the_predicted_arena(seed, ratio):
    """Export + TFLM run succeeds, or fails with a documented error; the arena is as predicted."""
    import tflm_export
    from keras_cprune import estimate_arena
    from keras_cprune.errors import ConversionError, TFLMRuntimeError
    from tflm_export.micro.planner import align

    note(f"graph: random_model(keras, seed={seed}); prune PA ratio={ratio}")
    model = prune(random_model(keras, seed), "PA", ratio, rule="all") if ratio else random_model(keras, seed)
    randomize(model, seed=seed % 1000)
    data = np.random.default_rng(seed).uniform(0, 1, (8,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    try:
        report = tflm_export.verify(tflm_export.convert(model, data), latency_runs=1)
    except (ConversionError, TFLMRuntimeError) as exc:  # documented in docs/ERRORS.md
        note(f"documented failure: {exc}")
        return
    assert report.arena.bytes == align(estimate_arena(model).bytes)
