"""Exception types of tflm_export (and, through `keras_cprune.errors`, of keras-cprune).

Every error says what was expected, what was received and how to fix it. The type names the
category, so callers can catch e.g. all model problems with ``ModelError``.
"""


class CPruneError(Exception):
    """Base class of every error raised by keras_cprune and tflm_export."""


class ModelError(CPruneError, ValueError):
    """The object passed as a model cannot be read (not a model, subclassed, unbuilt...)."""


class ModelFileError(CPruneError, OSError):
    """A model file is missing, corrupt, of an unknown format or needs unsafe loading."""


class BudgetError(CPruneError, ValueError):
    """A RAM/flash/MAC budget is malformed or cannot be met."""


class ConversionError(CPruneError, ValueError):
    """The int8 TFLite conversion failed (bad representative data, float ops left...)."""


class TFLMRuntimeError(CPruneError, RuntimeError):
    """The TFLite Micro runtime failed or aborted on a model."""


class MeasurementError(CPruneError, ValueError):
    """A TFLM measurement was asked with an invalid setting (e.g. an arena ``step`` below 1 byte);
    a failure of the runtime itself is a `TFLMRuntimeError`."""


class OutputPathError(CPruneError, OSError):
    """An output path exists already, cannot be written, or a write was interrupted."""
