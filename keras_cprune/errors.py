"""Exception types of keras-cprune: tflm_export's (re-exported), the pruning and the tuner ones.

Every error says what was expected, what was received and how to fix it. The type names the
category, so callers can catch e.g. all model problems with ``ModelError``.
"""
from tflm_export.errors import (BudgetError, ConversionError, CPruneError, MeasurementError,  # noqa: F401
                                ModelError, ModelFileError, OutputPathError, TFLMRuntimeError)


class UnbuiltModelError(ModelError):
    """The model has no known input shape yet."""


class SubclassedModelError(ModelError):
    """The model is a subclassed ``keras.Model`` without a functional graph."""


class PruningError(CPruneError, ValueError):
    """Bad arguments of pruning or of training a pruned model (ratio, mode, criterion, distillation
    ``alpha``...) or a model with nothing to prune."""


class PlanError(PruningError):
    """A pruning plan does not match the model it is applied to."""


class UnknownOptionError(PruningError, TypeError):
    """A keyword that is not a `PruneConfig` field (a `TypeError` too, as Python's own for an
    unexpected keyword argument)."""


class TunerError(CPruneError, ValueError):
    """A `BoardFitTuner` argument is invalid: an empty or unknown list of values to search,
    ``prune_options`` setting a tuned argument, an unknown ``oracle``."""


class NoTrialError(CPruneError, RuntimeError):
    """The tuner has no completed trial to report or export in this process: ``search()`` has not
    completed one, or this is a worker (results live in the chief's oracle)."""
