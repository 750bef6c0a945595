"""keras-cprune: complexity-driven structured pruning of Keras CNNs for TFLite Micro.

Public API: `analyze`; `prune` and `prune_to_budget` (a model), `plan_pruning` and `plan_to_budget`
(a `PruningPlan`), `apply_plan`; `estimate_arena`, `tradeoff`; `prune_during_training`, `strip`,
`quantize_aware`, `callbacks`; `PruneConfig`, `SearchConfig`, `Budget`, the result types and `errors`;
`BoardFitTuner`. Each name is imported from its module when first used (PEP 562), so that
``import keras_cprune`` costs no TensorFlow start-up and the command line can quiet it first.
"""
import importlib

_MODULES = {"errors": "keras_cprune.errors", "callbacks": "keras_cprune.training.callbacks"}
_EXPORTS = {  # public name -> the module defining it, in pipeline order
    "PruneConfig": "keras_cprune.config", "SearchConfig": "keras_cprune.config",
    "OpSpec": "keras_cprune.graph.layers", "register_layer": "keras_cprune.graph.layers",
    "unregister_layer": "keras_cprune.graph.layers",
    "analyze": "keras_cprune.analysis.complexity", "ComplexityReport": "keras_cprune.analysis.complexity",
    "LayerComplexity": "keras_cprune.analysis.complexity",
    "estimate_arena": "keras_cprune.deploy.arena", "ArenaFigure": "tflm_export.arena", "Budget": "tflm_export.budget",
    "PruningPlan": "keras_cprune.pruning.plan", "PlanTotals": "keras_cprune.pruning.plan",
    "prune": "keras_cprune.api", "plan_pruning": "keras_cprune.api", "prune_to_budget": "keras_cprune.api",
    "plan_to_budget": "keras_cprune.api", "apply_plan": "keras_cprune.api",
    "tradeoff": "keras_cprune.tradeoff_table", "Tradeoff": "keras_cprune.tradeoff_table",
    "prune_during_training": "keras_cprune.training.workflow",
    "strip": "keras_cprune.training.masks", "ConstantRatio": "keras_cprune.training.schedules",
    "PolynomialDecay": "keras_cprune.training.schedules", "PruningSchedule": "keras_cprune.training.schedules",
    "Distiller": "keras_cprune.training.distill", "quantize_aware": "keras_cprune.training.qat",
    "BoardFitTuner": "keras_cprune.tuner.board_fit",
}
__all__ = [*_MODULES, *_EXPORTS]
__version__ = "0.1.0"


def __getattr__(name):
    """The public name ``name``, imported from its module on first use."""
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'keras_cprune' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
