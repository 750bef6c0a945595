"""keras-cprune: complexity-driven structured pruning of Keras CNNs for TFLite Micro.

Public API: `analyze`, `prune`, `apply_plan`, `estimate_arena`, `tradeoff`, the result types
and `errors`.
"""
from . import errors
from .arena import ArenaEstimate, estimate_arena
from .complexity import ComplexityReport, LayerComplexity, analyze
from .plan import PruningPlan
from .pruner import apply_plan, prune
from .tradeoff import Tradeoff, tradeoff

__all__ = ["analyze", "prune", "apply_plan", "estimate_arena", "tradeoff", "ArenaEstimate", "ComplexityReport",
           "LayerComplexity", "PruningPlan", "Tradeoff", "errors"]
__version__ = "0.1.0"
