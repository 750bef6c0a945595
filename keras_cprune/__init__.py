"""keras-cprune: complexity-driven structured pruning of Keras CNNs for TFLite Micro.

Public API: `analyze`, `prune`, `apply_plan`, the result types and `errors`.
"""
from . import errors
from .complexity import ComplexityReport, LayerComplexity, analyze
from .plan import PruningPlan
from .pruner import apply_plan, prune

__all__ = ["analyze", "prune", "apply_plan", "ComplexityReport", "LayerComplexity", "PruningPlan", "errors"]
__version__ = "0.1.0"
