"""Predicted arena and flash against the TFLM runtime, shared by the Keras 3 and tf_keras tests."""
import numpy as np

from keras_cprune.deploy.arena import estimate_deployment
from keras_cprune.pruning.context import PruneContext
from keras_cprune.graph.clone import as_trained
from keras_cprune.pruning.rebuild import rebuild
from tflm_export import convert, find_min_arena
from tflm_export.micro.planner import align


def predicted_and_measured(model, removed=frozenset(), context=None):
    """((predicted arena, predicted flash), (measured arena, flatbuffer bytes), exact) of ``model``
    with ``removed`` units pruned, predicted with the unpruned model's converter schedule, for the
    export ``context.per_channel_dense`` says."""
    context = context or PruneContext.of(model)
    arena, flash = estimate_deployment(context.graph, context.deps.pruned_shapes(set(removed)), assume_trained=True,
                                       per_channel_dense=context.per_channel_dense, schedule=context.schedule)
    data = np.random.default_rng(0).uniform(0, 1, (4,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    tflite = convert(as_trained(rebuild(model, context.deps, set(removed))), data,
                     per_channel_dense=context.per_channel_dense)
    return (arena.bytes, flash), (find_min_arena(tflite).bytes, len(tflite)), arena.exact


def assert_exact(predicted, measured, exact=True):
    assert exact
    assert measured[0] == align(predicted[0]), f"arena predicted {predicted[0]:,} B, measured {measured[0]:,} B"
    assert abs(predicted[1] - measured[1]) <= 0.01 * measured[1], f"flash {predicted[1]:,} vs {measured[1]:,} B"
