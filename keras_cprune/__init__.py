"""keras-cprune: complexity-driven structured pruning of Keras CNNs for TFLite Micro.

Public API: `analyze`; `prune` and `prune_to_budget` (a model), `plan_pruning` and `plan_to_budget`
(a `PruningPlan`), `apply_plan`; `estimate_arena`, `tradeoff`; `prune_during_training`, `strip`,
`quantize_aware`, `callbacks`; `PruneConfig`, `SearchConfig`, `Budget`, the result types and `errors`;
`BoardFitTuner` is imported on first use (KerasTuner is slow to import).
"""
from keras_cprune import errors
from keras_cprune.training import callbacks
from keras_cprune.deploy.arena import estimate_arena
from keras_cprune.analysis.complexity import ComplexityReport, LayerComplexity, analyze
from keras_cprune.training.distill import Distiller
from keras_cprune.graph.layers import OpSpec, register_layer, unregister_layer
from keras_cprune.pruning.plan import PlanTotals, PruningPlan
from keras_cprune.config import PruneConfig, SearchConfig
from keras_cprune.api import apply_plan, plan_pruning, plan_to_budget, prune, prune_to_budget
from keras_cprune.training.qat import quantize_aware
from keras_cprune.tradeoff import Tradeoff, tradeoff
from keras_cprune.training.masks import strip
from keras_cprune.training.schedules import ConstantRatio, PolynomialDecay, PruningSchedule
from keras_cprune.training.workflow import prune_during_training
from tflm_export.arena import ArenaFigure  # one arena figure, predicted or measured, in both packages
from tflm_export.budget import Budget  # one Budget for prune_to_budget and the exporter

__all__ = ["analyze", "prune", "prune_to_budget", "plan_pruning", "plan_to_budget", "apply_plan", "estimate_arena",
           "tradeoff", "prune_during_training", "strip", "quantize_aware", "callbacks", "ArenaFigure", "Budget",
           "SearchConfig", "PlanTotals", "ComplexityReport", "ConstantRatio",
           "Distiller", "LayerComplexity", "PolynomialDecay", "PruneConfig", "PruningPlan", "Tradeoff", "errors",
           "OpSpec", "register_layer", "unregister_layer", "PruningSchedule", "BoardFitTuner"]
__version__ = "0.1.0"


def __getattr__(name):
    """``keras_cprune.BoardFitTuner``, imported with KerasTuner only when first asked for."""
    if name == "BoardFitTuner":
        from keras_cprune.tuner.board_fit import BoardFitTuner

        return BoardFitTuner
    raise AttributeError(f"module 'keras_cprune' has no attribute {name!r}")
