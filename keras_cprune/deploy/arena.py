"""Predict the TFLM tensor arena and flash of the int8 model tflm_export produces, from the Keras graph.

The graph is lowered as the converter lowers it (`lowering`), its ops put in the converter's own
order (`schedule`), and tflm_export's planner replays the allocator of a TFLM build (a `Target`:
the PyPI runtime by default, or a board's Cortex-M build) on it.
"""
from __future__ import annotations

from tflm_export.arena import ArenaFigure
from tflm_export.firmware.code_size import code_bytes
from tflm_export.micro.op_graph import MicroGraph
from tflm_export.micro.planner import alive_at, replay_allocations
from tflm_export.micro.targets import resolve_target

from keras_cprune.config import check_per_channel_dense
from keras_cprune.graph.reader import Graph, read_graph
from keras_cprune.deploy.lowering import micro_graph
from keras_cprune.deploy.converter_order import schedule_of


def estimate_graph_arena(graph: Graph, shapes: dict | None = None, *, assume_trained: bool = False,
                         per_channel_dense: bool = True, schedule=None, target=None) -> ArenaFigure:
    """The predicted `ArenaFigure` of ``graph`` with optional pruned ``shapes`` (see `micro_graph`)
    on the ``target`` build (a `Target`, its name, or None: the PyPI runtime)."""
    return _arena(*micro_graph(graph, shapes, assume_trained=assume_trained, per_channel_dense=per_channel_dense,
                               schedule=schedule), target)


def estimate_deployment(graph: Graph, shapes: dict | None = None, *, assume_trained: bool = False,
                        per_channel_dense: bool = True, schedule=None, target=None) -> tuple:
    """``(predicted ArenaFigure on the ``target`` build, flash bytes)`` of ``graph`` with optional pruned
    ``shapes``, lowered once: flash from the ``schedule``'s flatbuffer where there is one, else `estimate_flash`,
    plus, on a Cortex-M target, the TFLM code the firmware links for its ops (where measured)."""
    lowered = micro_graph(graph, shapes, assume_trained=assume_trained, per_channel_dense=per_channel_dense,
                          schedule=schedule)
    flash = schedule.flash(lowered[0]) if schedule is not None and schedule.flatbuffer_bytes else \
        estimate_flash(lowered[0])
    return _arena(*lowered, target), flash + _code_bytes(lowered[0], target)


def _code_bytes(micro: MicroGraph, target) -> int:
    """The TFLM code a firmware image of ``micro``'s ops links on ``target`` (0: host, or not known)."""
    target = resolve_target(target)
    return 0 if target.core == "host" else code_bytes({op.op for op in micro.ops}, target.name) or 0


def _arena(micro: MicroGraph, keys: dict, layers: dict, approximated: tuple, target=None) -> ArenaFigure:
    """The replayed allocation of ``micro`` on ``target`` as a figure of the Keras graph: the peak's
    layer and tensor keys."""
    replay = replay_allocations(micro, target)
    alive = alive_at(micro, replay.peak_op) if replay.peak_op >= 0 else ()
    return ArenaFigure(replay.bytes, "predicted", replay.head_bytes, replay.tail_bytes, replay.peak_op,
                       layers.get(replay.peak_op, ""), tuple(keys[t] for t in alive if t in keys),
                       not approximated and not replay.unknown_ops, approximated)


def estimate_flash(micro: MicroGraph) -> int:
    """Approximate .tflite flatbuffer bytes: constant data + per-tensor, per-op and per-channel
    quantization overhead, least-squares fitted on converted models (within ~5%; exact flash
    comes from tflm_export's compile check)."""
    constant = sum(t.nbytes for t in micro.tensors if t.constant)
    channels = sum(t.quant_channels for t in micro.tensors)
    return int(round(1.0034 * constant + 303.7 * len(micro.tensors) - 215.7 * len(micro.ops)
                     + 12.93 * channels - 71.6))


def estimate_arena(model, *, target=None, assume_trained: bool = False, per_channel_dense: bool = True,
                   input_shape=None) -> ArenaFigure:
    """Predicted minimal TFLM tensor arena (bytes) of ``model`` exported to int8 by tflm_export, on
    the ``target`` build: what ``tflm_export.predict_arena_from_tflite(convert(model), target)`` gives.

    The ops run in the order the TFLite converter gives them: the model is converted once per
    architecture (cached) to read that order (`converter_order.converter_schedule`). No training data
    is needed; `tflm_export.verify` measures the real arena.

    Args:
        model: a built Functional or Sequential `keras.Model` (Keras 3 or tf_keras).
        target: the TFLM build: a `tflm_export.micro.targets.Target`, its name (``"cortex-m4/cmsis_nn"``, see
            ``tflm_export.micro.targets.TARGETS``), or None for the PyPI runtime (x86-64). A board's is
            ``tflm_export.BOARDS[name].target``.
        assume_trained: predict for the weights after training rather than as they are now: the
            converter drops an all-zero Dense bias (e.g. of a freshly built model), which saves a
            tensor's overhead. Default False.
        per_channel_dense: as `tflm_export.convert`'s: False predicts the export whose Dense
            weights are quantized per tensor (TFLM then keeps no per-unit multipliers). Default True.
        input_shape: input shape without batch to fix free input dimensions
            (``keras.Input((None, None, 3))``). Default None: the declared shape.

    Returns:
        A ``"predicted"`` `tflm_export.ArenaFigure`; its ``bytes`` is the ``arena_size`` to give
        TFLM, ``peak`` the layer at the activation peak.

    Raises:
        ModelError: the model cannot be read (unbuilt, subclassed, free input dimensions).
        PruningError: ``per_channel_dense`` is not a bool.
        BudgetError: an unknown ``target``.

    Example:

    ```python
    estimate = keras_cprune.estimate_arena(model, target="cortex-m4/cmsis_nn", assume_trained=True)
    print(f"arena {estimate.bytes:,} B, peak at {estimate.peak}")
    ```
    """
    check_per_channel_dense(per_channel_dense)
    target = resolve_target(target)
    graph = read_graph(model, input_shape=input_shape)
    return estimate_graph_arena(graph, assume_trained=assume_trained, per_channel_dense=per_channel_dense,
                                schedule=schedule_of(model, graph, per_channel_dense, assume_trained), target=target)
