"""Keras callbacks: `ComplexityLogger` (model complexity in History/TensorBoard),
`FilterPruningStep` (gradual structured pruning, see `keras_cprune.training.workflow`) and
`ExportOnTrainEnd` (TFLite Micro export of the last or, with ``save_best_only``, the best model).

All are Keras 3 callbacks that tf_keras' ``fit`` accepts as well.
"""
from __future__ import annotations

import os
import warnings

import keras

from keras_cprune.deploy.arena import estimate_arena
from keras_cprune.analysis.complexity import analyze
from keras_cprune.config import PruneConfig, check_mode, check_per_channel_dense, resolve_config
from keras_cprune.errors import PruningError
from keras_cprune.pruning.context import PruneContext
from keras_cprune.training.masks import apply_masks, channel_masks, strip, zeroed_units
from keras_cprune.training.schedules import PruningSchedule, deserialize_schedule, serialize_schedule

UNITS = ("step", "epoch")
MONITOR_MODES = ("auto", "min", "max")
# Monitored names that improve upwards in "auto" mode when the metric declares no direction.
HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1", "fmeasure")


def complexity_values(model) -> dict:
    """What `ComplexityLogger` logs, by name: the model's `analyze` totals and the TFLM arena
    predicted for it once trained (a fresh all-zero Dense bias, which the converter drops, counts)."""
    report = analyze(model)
    return {"params": report.params, "macs": report.macs, "peak_act_bytes_int8": report.peak_act_bytes_int8,
            "tflm_arena_bytes": estimate_arena(model, assume_trained=True).bytes}


class _Callback(keras.callbacks.Callback):
    """tf_keras' ``CallbackList`` also asks each callback which batch hooks it implements."""

    _train_batch_hooks = False

    def _implements_train_batch_hooks(self) -> bool:
        return self._train_batch_hooks

    def _implements_test_batch_hooks(self) -> bool:
        return False

    def _implements_predict_batch_hooks(self) -> bool:
        return False


def tensorboard_train_dir(tensorboard) -> str:
    """The folder where a ``keras.callbacks.TensorBoard`` (Keras 3 or tf_keras) writes its epoch scalars."""
    log_dir = getattr(tensorboard, "log_dir", None)
    if not isinstance(log_dir, (str, os.PathLike)):
        raise PruningError(f"Expected `tensorboard` to be a keras.callbacks.TensorBoard instance (with a `log_dir`). "
                           f"Received: tensorboard={tensorboard!r}. Pass the TensorBoard callback given to fit, "
                           f"or use log_dir=.")
    return os.path.join(os.fspath(log_dir), "train")


class ComplexityLogger(_Callback):
    """Logs the model's parameters, MACs, peak activation memory and predicted TFLM arena during ``fit``.

    The values are those of `complexity_values(model)` (`analyze` totals, int8 bytes), measured when
    training starts (at every epoch with ``every_epoch=True``). They are added to each epoch's
    ``logs``, so they appear in ``History``, and, with a ``log_dir`` or a ``TensorBoard`` callback
    (written to its ``train`` folder, beside its epoch scalars), as TensorBoard scalars
    ``complexity/<name>`` (float32) at the epoch index.

    Args:
        every_epoch: measure again at every epoch (a model pruned during ``fit`` shrinks).
        log_dir: a folder for the TensorBoard scalars, or None.
        tensorboard: the ``keras.callbacks.TensorBoard`` given to ``fit``, instead of ``log_dir``.

    Raises:
        PruningError: both ``log_dir`` and ``tensorboard``, or a ``tensorboard`` without a ``log_dir``.

    Example:
    ```python
    board = keras.callbacks.TensorBoard("logs")
    history = model.fit(x, y, callbacks=[board, ComplexityLogger(tensorboard=board)])
    history.history["tflm_arena_bytes"]
    ```
    """

    def __init__(self, every_epoch: bool = False, log_dir: str | None = None, tensorboard=None):
        super().__init__()
        if tensorboard is not None and log_dir is not None:
            raise PruningError(f"Pass `log_dir` or `tensorboard` to ComplexityLogger, not both. "
                               f"Received: log_dir={log_dir!r}, tensorboard={tensorboard!r}.")
        self.every_epoch = every_epoch
        self.log_dir = log_dir if tensorboard is None else tensorboard_train_dir(tensorboard)
        self.values: dict = {}
        self._writer = None

    def on_train_begin(self, logs=None):
        self.values = {}
        if self.log_dir:
            self._writer = _ScalarWriter.open(self.log_dir)

    def on_epoch_begin(self, epoch, logs=None):
        if self.values and not self.every_epoch:
            return
        self.values = complexity_values(self.model)
        if self._writer is not None:
            self._writer.write({f"complexity/{name}": value for name, value in self.values.items()}, epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.values)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _ScalarWriter:
    """TensorBoard scalars through ``tf.summary`` on plain Python numbers, so on every Keras backend
    (as ``keras.callbacks.TensorBoard`` writes them); without TensorFlow, `open` warns and gives None."""

    def __init__(self, tf, log_dir: str):
        self._tf = tf
        self._writer = tf.summary.create_file_writer(os.fspath(log_dir))
        # A float32 scalar tagged for TensorBoard's scalar dashboard, written without the tensorboard package.
        self._metadata = tf.compat.v1.SummaryMetadata(
            plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"))

    @classmethod
    def open(cls, log_dir: str):
        try:
            import tensorflow as tf
        except ImportError:
            warnings.warn(f"ComplexityLogger writes TensorBoard scalars with TensorFlow, which is not installed: "
                          f"nothing is written to {log_dir!r}; the values are still in the History.", stacklevel=3)
            return None
        return cls(tf, log_dir)

    def write(self, values: dict, step: int) -> None:
        tf = self._tf
        with self._writer.as_default(step=step):
            for tag, value in values.items():
                tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=self._metadata)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class FilterPruningStep(_Callback):
    """Prunes filters of the model being fit on a `PruningSchedule`, by zeroing them.

    ``step`` counts train batches (``unit="step"``; one per ``steps_per_execution``) or epochs
    (``unit="epoch"``). Where ``schedule.prunes_at(step)``, the filters to remove are chosen anew
    with ``PruneContext.choose(mode, schedule.ratio_at(step), config)`` on the current weights and
    zeroed; after every batch they are zeroed again. When ``fit`` starts, channels already zeroed
    (by an earlier ``fit``, in a reloaded model) stay so. ``plan`` is the `PruningPlan` of the last
    re-planning. Made by `prune_during_training`; `keras_cprune.training.workflow.save_checkpoint` and
    `load_checkpoint` keep ``step`` across a reload.

    Args:
        mode: "PA", "FA" or "MA" (case-insensitive).
        schedule: a `PruningSchedule` (`PolynomialDecay`, `ConstantRatio`).
        config: the `PruneConfig` (defaults: `PruneConfig()`).
        unit: "step" or "epoch": what ``step`` counts.
        **options: fields of `PruneConfig`, overriding those of ``config``.

    Raises:
        PruningError: a bad mode, schedule, unit or option.

    Example:
    ```python
    step = FilterPruningStep("FA", PolynomialDecay(0.0, 0.5, 0, 1000), config=PruneConfig(rule="all"))
    masked.fit(x, y, callbacks=[step])  # masked: from prune_during_training
    ```
    """

    _train_batch_hooks = True

    def __init__(self, mode: str, schedule: PruningSchedule, *, config: PruneConfig | None = None,
                 unit: str = "step", **options):
        super().__init__()
        if not isinstance(schedule, PruningSchedule):
            raise PruningError(f"Expected `schedule` to be a PruningSchedule (PolynomialDecay, ConstantRatio). "
                               f"Received: schedule={schedule!r}.")
        if unit not in UNITS:
            raise PruningError(f"Expected `unit` to be one of {UNITS}. Received: unit={unit!r}.")
        self.mode, self.schedule, self.unit = check_mode(mode), schedule, unit
        self.config = resolve_config(config, **options)
        self.step = 0
        self._chosen = None  # (ratio, removed units, selections) of the last re-planning
        self._plan = None
        self._context = None
        self._masks: list = []

    def get_config(self) -> dict:
        """JSON-ready arguments, the `PruneConfig` nested; a callable ``importance`` is stored as ``None``."""
        return {"mode": self.mode, "schedule": serialize_schedule(self.schedule), "unit": self.unit,
                "config": self.config.get_config()}

    @classmethod
    def from_config(cls, config: dict) -> "FilterPruningStep":
        """The callback `get_config` describes."""
        config = dict(config)
        return cls(schedule=deserialize_schedule(config.pop("schedule")),
                   config=PruneConfig.from_config(config.pop("config")), **config)

    @property
    def plan(self):
        """The `PruningPlan` of the last re-planning (None before the first), priced when first read:
        its predicted arena converts the model, which training itself never needs."""
        if self._plan is None and self._chosen is not None:
            ratio, removed, selections = self._chosen
            self._plan = self._context.describe(self.mode, ratio, removed, selections, self.config.importance,
                                                self.config.rule)
        return self._plan

    def on_train_begin(self, logs=None):
        self._context = PruneContext.of(self.model)
        self._masks = channel_masks(self._context.deps, zeroed_units(self._context.deps))

    def on_epoch_begin(self, epoch, logs=None):
        if self.unit == "epoch":
            self._maybe_prune()

    def on_train_batch_begin(self, batch, logs=None):
        if self.unit == "step":
            self._maybe_prune()

    def on_train_batch_end(self, batch, logs=None):
        self.model  # noqa: B018  (under JAX, reading `model` puts the trained values back in the variables)
        apply_masks(self._masks)
        if self.unit == "step":
            self.step += 1

    def on_epoch_end(self, epoch, logs=None):
        if self.unit == "epoch":
            self.step += 1

    def _maybe_prune(self) -> None:
        if self.schedule.prunes_at(self.step):
            self.model  # noqa: B018  (JAX: sync the trained values into the variables before reading them)
            ratio = self.schedule.ratio_at(self.step)
            removed, selections = self._context.choose(self.mode, ratio, self.config)
            self._chosen, self._plan = (ratio, removed, selections), None
            self._masks = channel_masks(self._context.deps, removed)
            apply_masks(self._masks)


def monitor_mode(monitor: str, mode: str, model=None) -> str:
    """"min" or "max": how ``monitor`` improves. "auto" decides as ``keras.callbacks.ModelCheckpoint``
    does: losses fall; a compiled metric that declares its direction (Keras 3) follows it; other
    names rise if they look like accuracy/AUC/precision/recall/F1 (`HIGHER_IS_BETTER`), else fall."""
    if mode != "auto":
        return mode
    name = monitor.removeprefix("val_")
    if name.endswith("loss"):
        return "min"
    declared = declared_direction(model, name)
    if declared is not None:
        return "max" if declared == "up" else "min"
    return "max" if any(hint in name for hint in HIGHER_IS_BETTER) else "min"


def declared_direction(model, name: str) -> str | None:
    """"up"/"down" as the compiled Keras 3 metric called ``name`` declares it, else None (tf_keras, custom)."""
    for tracker in getattr(model, "metrics", None) or ():
        for metric in getattr(tracker, "metrics", [tracker]):  # Keras 3 groups compiled metrics
            if metric.name == name:
                return getattr(metric, "_direction", None)
    return None


class ExportOnTrainEnd(_Callback):
    """Exports the model for TFLite Micro with `tflm_export.export` when training ends: int8
    flatbuffer verified on the TFLM runtime, firmware sources and ``report.json`` in ``out_dir``
    (written atomically).

    With ``save_best_only=True`` it exports instead at each epoch where ``monitor`` improves (as
    ``keras.callbacks.ModelCheckpoint`` saves), so ``out_dir`` holds the best model when training
    ends. ``mode`` says whether ``monitor`` improves downwards ("min") or upwards ("max"); "auto"
    infers it like ModelCheckpoint (see `monitor_mode`). An epoch whose logs lack ``monitor`` (no
    validation data, ``validation_freq`` > 1) is skipped with one warning per ``fit``; if no epoch
    had it, the last epoch's model is exported when training ends: a missing metric never stops
    training.

    A gradually pruned (masked) model is stripped to its dense smaller form first. A result over
    ``budget``/``board`` is written with a loud warning and ``report.fits == False``; with
    ``strict=True`` it is a `BudgetError` and ``out_dir`` keeps the previous export. ``self.report``
    and ``self.exported_epoch`` (0-based) describe the export in ``out_dir``.

    Args:
        out_dir: the export folder (replaced atomically).
        representative_data: int8 calibration inputs (array, ``tf.data.Dataset`` or generator).
        budget: a `Budget` to check the measured arena, flash and MACs against, or None.
        board: a name of `tflm_export.BOARDS`, instead of ``budget``.
        monitor: the logged metric that decides the best epoch with ``save_best_only``.
        mode: "auto", "min" or "max": how ``monitor`` improves.
        save_best_only: export at each improving epoch instead of when training ends.
        strict: over budget raises instead of warning.
        test_inputs: inputs for the TFLM-vs-Keras agreement and accuracy, or None.
        labels: labels of ``test_inputs`` for the TFLM int8 accuracy, or None.
        per_channel_dense: as `tflm_export.convert`'s: False quantizes Dense weights per tensor.

    Raises:
        PruningError: a ``mode`` other than "auto", "min" or "max".
        BudgetError: with ``strict=True``, when the export does not fit.

    Example:
    ```python
    export = ExportOnTrainEnd("out/fw", x_train[:200], board="nano33ble", save_best_only=True)
    model.fit(x, y, validation_data=(xv, yv), epochs=5, callbacks=[export])
    export.report.summary()
    ```
    """

    def __init__(self, out_dir: str, representative_data, *, budget=None, board=None, monitor: str = "val_accuracy",
                 mode: str = "auto", save_best_only: bool = False, strict: bool = False, test_inputs=None,
                 labels=None, per_channel_dense: bool = True):
        super().__init__()
        if mode not in MONITOR_MODES:
            raise PruningError(f"Expected `mode` to be one of {MONITOR_MODES} (how `monitor` improves). "
                               f"Received: mode={mode!r}.")
        self.out_dir, self.representative_data = out_dir, representative_data
        self.budget, self.board, self.monitor, self.mode = budget, board, monitor, mode
        self.save_best_only = save_best_only
        self.strict, self.test_inputs, self.labels = strict, test_inputs, labels
        self.per_channel_dense = check_per_channel_dense(per_channel_dense)
        self.best, self.report, self.exported_epoch = None, None, None
        self._last_epoch, self._exported, self._warned = None, False, False

    def on_train_begin(self, logs=None):
        self._last_epoch, self._exported, self._warned = None, False, False

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch
        if not self.save_best_only:
            return
        value = (logs or {}).get(self.monitor)
        if value is None:
            self._warn_missing(epoch, logs or {})
            return
        higher = monitor_mode(self.monitor, self.mode, self.model) == "max"
        if self.best is None or (value > self.best if higher else value < self.best):
            self.best = value
            self._export(epoch)
            self._exported = True

    def on_train_end(self, logs=None):
        if not (self.save_best_only and self._exported):
            self._export(self._last_epoch)

    def _warn_missing(self, epoch, logs: dict) -> None:
        if self._warned:
            return
        self._warned = True
        warnings.warn(f"ExportOnTrainEnd monitors {self.monitor!r}, which is not in the logs of epoch {epoch} "
                      f"(available: {', '.join(sorted(logs)) or 'none'}). Epochs without it are not compared; if "
                      "none has it, the last epoch's model is exported when training ends. Pass validation data "
                      "to fit or set monitor= to an available name.", RuntimeWarning, stacklevel=2)

    def _export(self, epoch) -> None:
        """Export into a staging folder that replaces ``out_dir`` only if it fits or ``strict`` is off."""
        import tflm_export
        from tflm_export.budget import describe_over
        from tflm_export.firmware.sources import atomic_dir

        from keras_cprune.errors import BudgetError
        with atomic_dir(self.out_dir, overwrite=True) as staging:
            report = tflm_export.export(strip(self.model), self.representative_data, staging, budget=self.budget,
                                        board=self.board, test_inputs=self.test_inputs, labels=self.labels,
                                        overwrite=True, latency_runs=5, per_channel_dense=self.per_channel_dense)
            over = describe_over(report.resources)
            if over and self.strict:
                raise BudgetError(f"The model exported at epoch {epoch} does not fit the budget: {over}. "
                                  f"{self.out_dir!r} keeps the previous export. Prune further "
                                  "(prune_to_budget) or raise the budget.")
        self.report, self.exported_epoch = report, epoch
        if over:
            warnings.warn(f"The exported model in {self.out_dir!r} does not fit the budget: {over}.",
                          RuntimeWarning, stacklevel=2)

