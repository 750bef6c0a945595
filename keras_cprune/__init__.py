"""keras-cprune: complexity-driven structured pruning of Keras CNNs for TFLite Micro.

Public API: `analyze`, `prune`, `apply_plan`, `estimate_arena`, `tradeoff`,
`prune_during_training`, `strip`, `quantize_aware`, `Budget`, `callbacks`, the result types and `errors`.
"""
from keras_cprune import errors
from keras_cprune.training import callbacks
from keras_cprune.deploy.arena import ArenaEstimate, estimate_arena
from keras_cprune.analysis.complexity import ComplexityReport, LayerComplexity, analyze
from keras_cprune.training.distill import Distiller
from keras_cprune.graph.layers import OpSpec, register_layer
from keras_cprune.pruning.plan import PruningPlan
from keras_cprune.config import PruneConfig
from keras_cprune.api import apply_plan, prune, prune_to_budget
from keras_cprune.training.qat import quantize_aware
from keras_cprune.tradeoff import Tradeoff, tradeoff
from keras_cprune.training.masks import strip
from keras_cprune.training.schedules import ConstantRatio, PolynomialDecay
from keras_cprune.training.workflow import prune_during_training
from tflm_export.budget import Budget  # one Budget for prune(budget=) and the exporter

__all__ = ["analyze", "prune", "prune_to_budget", "apply_plan", "estimate_arena", "tradeoff", "prune_during_training",
           "strip", "quantize_aware", "callbacks", "ArenaEstimate", "Budget", "ComplexityReport", "ConstantRatio",
           "Distiller", "LayerComplexity", "PolynomialDecay", "PruneConfig", "PruningPlan", "Tradeoff", "errors",
           "OpSpec", "register_layer"]
__version__ = "0.1.0"
