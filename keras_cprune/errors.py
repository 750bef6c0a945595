"""Exception types of keras-cprune: tflm_export's (re-exported) and the pruning ones.

Every error says what was expected, what was received and how to fix it. The type names the
category, so callers can catch e.g. all model problems with ``ModelError``.
"""
from tflm_export.errors import (BudgetError, ConversionError, CPruneError, ModelError, ModelFileError,  # noqa: F401
                                OutputPathError, TFLMRuntimeError)


class UnbuiltModelError(ModelError):
    """The model has no known input shape yet."""


class SubclassedModelError(ModelError):
    """The model is a subclassed ``keras.Model`` without a functional graph."""


class PruningError(CPruneError, ValueError):
    """Bad pruning arguments (ratio, mode, criterion...) or a model with nothing to prune."""


class PlanError(PruningError):
    """A pruning plan does not match the model it is applied to."""
