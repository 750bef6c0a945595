"""keras-cprune: complexity-driven structured pruning of Keras CNNs for TFLite Micro.

Public API: `analyze`, `prune`, `apply_plan`, `estimate_arena`, `tradeoff`,
`prune_during_training`, `strip`, `quantize_aware`, `Budget`, `callbacks`, the result types and `errors`.
"""
from . import callbacks, errors
from .arena import ArenaEstimate, estimate_arena
from .complexity import ComplexityReport, LayerComplexity, analyze
from .distill import Distiller
from .ops import OpSpec, register_layer
from .plan import PruningPlan
from .config import PruneConfig
from .pruner import apply_plan, prune, prune_to_budget
from .qat import quantize_aware
from .tradeoff import Tradeoff, tradeoff
from .masks import strip
from .schedules import ConstantRatio, PolynomialDecay
from .training import prune_during_training
from tflm_export.budget import Budget  # one Budget for prune(budget=) and the exporter

__all__ = ["analyze", "prune", "prune_to_budget", "apply_plan", "estimate_arena", "tradeoff", "prune_during_training",
           "strip", "quantize_aware", "callbacks", "ArenaEstimate", "Budget", "ComplexityReport", "ConstantRatio",
           "Distiller", "LayerComplexity", "PolynomialDecay", "PruneConfig", "PruningPlan", "Tradeoff", "errors",
           "OpSpec", "register_layer"]
__version__ = "0.1.0"
