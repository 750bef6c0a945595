"""BoardFitTuner: the most accurate pruned model that fits a board, searched with KerasTuner.

Every trial prunes the user's model to a budget with `prune_to_budget` (mode, selection rule,
importance, the fraction of the budget to use and whether to train from scratch are the
hyperparameters), checks the prediction (`estimate_arena`, flash, MACs) against the budget
before training, then trains it as KerasTuner does. Chief/worker runs
(``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``) and resuming
(``overwrite=False``) are KerasTuner's own.
"""
from __future__ import annotations

import dataclasses
import json
import os

import keras
import keras_tuner as kt

from tflm_export.boards import resolve_budget
from tflm_export.budget import Budget, describe_over

from keras_cprune.config import CRITERIA, MODES, OPTIONS, RULES, PruneConfig, check_mode, resolve_config
from keras_cprune.errors import BudgetError, ModelError
from keras_cprune.tuner.trials import RECORD, ExportedTrial, TrialPoint, plot_trials, read_json, write_json

ALLOCATIONS = ("cost", "paper")
USAGE = ("predicted_arena_bytes", "predicted_flash_bytes", "macs", "params")  # trial metrics besides the objective
_TUNED = {"mode", "ratio", "importance", "rule", "reinitialize", "allocation", "budget", "verify",
          "return_plan", "config"}


def is_worker() -> bool:
    """True in a KerasTuner worker process (``KERASTUNER_ORACLE_IP`` set, tuner id without "chief")."""
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "")


def scale_budget(budget: Budget, fraction: float) -> Budget:
    """``budget`` with every limit multiplied by ``fraction`` (rounded down, at least 1)."""
    return dataclasses.replace(budget, **{k: max(1, int(v * fraction)) for k, v in budget.get_config().items()
                                          if v is not None})


def predict_usage(model, per_channel_dense: bool = True) -> dict:
    """Predicted deployment of ``model`` once trained, exported with ``per_channel_dense`` as
    `tflm_export.convert`'s: TFLM arena (as `estimate_arena`), flatbuffer flash (bytes, from the
    converter schedule's flatbuffer), MACs per inference and parameters."""
    from keras_cprune.deploy.arena import estimate_deployment
    from keras_cprune.analysis.complexity import report_from_graph
    from keras_cprune.graph.reader import read_graph
    from keras_cprune.deploy.converter_order import schedule_of

    graph = read_graph(model)
    report = report_from_graph(graph)
    arena, flash = estimate_deployment(graph, assume_trained=True, per_channel_dense=per_channel_dense,
                                       schedule=schedule_of(model, graph, per_channel_dense))
    return {"predicted_arena_bytes": arena.bytes, "predicted_flash_bytes": int(flash), "macs": int(report.macs),
            "params": int(report.params)}


def compile_config_of(path) -> dict | None:
    """The compile settings saved in a ``.keras`` file (its ``config.json``), None when there are none
    (saved uncompiled, or another format)."""
    import zipfile

    path = os.fspath(path)
    if not path.endswith(".keras") or not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json")).get("compile_config") or None


def classifier_compile_kwargs(model) -> dict:
    """Adam, sparse categorical cross-entropy (from logits unless the model ends in a softmax), accuracy."""
    last = model.layers[-1]
    probabilities = type(last).__name__ == "Softmax" or getattr(getattr(last, "activation", None), "__name__", "") == "softmax"
    return {"optimizer": "adam", "metrics": ["accuracy"],
            "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)}


def _values(name: str, values, allowed=None) -> tuple:
    values = (values,) if isinstance(values, (str, bool)) else tuple(values)
    if not values or (allowed is not None and any(v not in allowed for v in values)):
        raise ValueError(f"Expected `{name}` to be a non-empty list of values among {allowed}. Received: {name}={values!r}.")
    return values


def _source_kind(model) -> str:
    if isinstance(model, (str, os.PathLike)):
        return "path"
    if isinstance(model, keras.Model) or (hasattr(model, "layers") and hasattr(model, "get_config")):
        return "model"
    if callable(model):
        return "build_fn"
    raise ModelError("Expected `model` to be a Keras model, the path of a .keras/.h5 file or a function returning "
                     f"a model. Received: model={model!r} of type {type(model).__name__}.")


class BoardFitHyperModel(kt.HyperModel):
    """Pruned variants of one model, each fitting ``budget`` by prediction, compiled like the original.

    ``model``: a Keras model, a .keras/.h5 path or a zero-argument function returning a model,
    read once per process (so every KerasTuner worker rebuilds it). Hyperparameters: ``mode``,
    ``rule``, ``allocation``, ``importance``, ``budget_fraction`` (in ``headroom``, step 0.05),
    ``reinitialize``. ``config``: the `PruneConfig` whose ``importance`` and ``rule`` each trial
    replaces; ``prune_options``: its other fields, or `prune_to_budget` arguments (``step``).
    """

    def __init__(self, model, budget: Budget, *, modes=MODES, rules=RULES, importances=("l1", "l2", "bn_gamma"),
                 headroom=(0.7, 1.0), reinitialize=(False, True), allocations=ALLOCATIONS, compile_kwargs=None,
                 config: PruneConfig | None = None, prune_options=None, unsafe=False, name="board_fit"):
        super().__init__(name=name)
        self._kind, self._source, self._model, self.unsafe = _source_kind(model), model, None, unsafe
        self.budget = budget
        self.modes = tuple(check_mode(m) for m in _values("modes", modes))
        self.rules = _values("rules", rules, RULES)
        self.importances = _values("importances", importances, CRITERIA)
        self.reinitialize = _values("reinitialize", reinitialize, (False, True))
        self.allocations = _values("allocations", allocations, ALLOCATIONS)
        low, high = (headroom, headroom) if isinstance(headroom, (int, float)) else tuple(headroom)
        if not 0 < low <= high <= 1:
            raise BudgetError(f"`headroom` is the (min, max) fraction of the budget a candidate may use, with "
                              f"0 < min <= max <= 1. Received: headroom={headroom!r}.")
        self.headroom = (float(low), float(high))
        self.compile_kwargs = compile_kwargs
        options = dict(prune_options or {})
        if _TUNED & set(options):
            raise ValueError(f"prune_options= may not set {sorted(_TUNED & set(options))}: the tuner chooses them "
                             f"(a PruneConfig goes to config=). Received: prune_options={options!r}.")
        self.config = resolve_config(config, **{k: options.pop(k) for k in OPTIONS if k in options})
        self.prune_options = options  # prune_to_budget's own arguments

    @property
    def base_model(self):
        """The model to prune, loaded or built on first use in this process."""
        if self._model is None:
            if self._kind == "path":
                from keras_cprune.io import load_model

                self._model = load_model(os.fspath(self._source), unsafe=self.unsafe)
                self._file_compile_config = compile_config_of(self._source)
            else:
                model = self._source if self._kind == "model" else self._source()
                if not hasattr(model, "layers"):
                    raise ModelError(f"Expected the build function to return a Keras model. Received: {model!r}.")
                self._model = model
        return self._model

    def check_reachable(self) -> None:
        """`BudgetError` now, not one failed trial at a time, when pruning cannot reach the smallest
        budget fraction of ``headroom`` (a smaller budget is never easier, whatever the mode)."""
        from keras_cprune.api import prune_to_budget

        low = self.headroom[0]
        try:
            prune_to_budget(self.base_model, scale_budget(self.budget, low), mode=self.modes[0], config=self.config,
                            verify=False, **self.prune_options)
        except BudgetError as exc:
            raise BudgetError(f"headroom={self.headroom} asks candidates to fit {low:g} x {self.budget} = "
                              f"{scale_budget(self.budget, low)}, which pruning cannot reach. Raise the lower bound "
                              f"of headroom= (or the budget). {exc}") from None

    def space(self, hp) -> dict:
        """Declare the hyperparameters in ``hp`` and return this trial's values."""
        def choice(name, values):
            return hp.Choice(name, list(values)) if len(values) > 1 else hp.Fixed(name, values[0])

        low, high = self.headroom
        return {"mode": choice("mode", self.modes), "rule": choice("rule", self.rules),
                "allocation": choice("allocation", self.allocations),
                "importance": choice("importance", self.importances),
                "budget_fraction": (hp.Float("budget_fraction", low, high, step=0.05, default=high) if low < high
                                    else hp.Fixed("budget_fraction", high)),
                "reinitialize": (hp.Boolean("reinitialize", default=False) if len(self.reinitialize) > 1
                                 else hp.Fixed("reinitialize", self.reinitialize[0]))}

    def build(self, hp):
        """The base model pruned to ``budget_fraction`` of the budget, compiled; `BudgetError` when
        the scaled budget cannot be met or the prediction of the result exceeds the budget."""
        from keras_cprune.api import prune_to_budget

        v = self.space(hp)
        config = dataclasses.replace(self.config, importance=v["importance"], rule=v["rule"])
        model = prune_to_budget(self.base_model, scale_budget(self.budget, v["budget_fraction"]), mode=v["mode"],
                                config=config, reinitialize=v["reinitialize"], allocation=v["allocation"],
                                verify=False, **self.prune_options)
        usage = self._usage(model)
        fits = self.budget.check(ram=usage["predicted_arena_bytes"], flash=usage["predicted_flash_bytes"],
                                 macs=usage["macs"])
        over = describe_over(fits)
        if over:
            raise BudgetError(f"The pruned candidate {v} is predicted over the budget {self.budget}: {over}")
        self._compile(model)
        return model

    def _compile(self, model) -> None:
        if self.compile_kwargs is not None:
            kwargs = dict(self.compile_kwargs)
            optimizer = kwargs.get("optimizer")
            if optimizer is not None and not isinstance(optimizer, str):  # a fresh optimizer per trial
                kwargs["optimizer"] = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
            model.compile(**kwargs)
            return
        base = self.base_model
        config = base.get_compile_config() if hasattr(base, "get_compile_config") else None
        config = config or getattr(self, "_file_compile_config", None)
        if not config:
            raise ModelError("Expected a compiled model (call model.compile(...) before passing or saving it) or "
                             "compile_kwargs=dict(optimizer=..., loss=..., metrics=[...]). Received: model "
                             f"{getattr(base, 'name', base)!r} without a compile configuration.")
        model.compile_from_config(config)

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        """``model.fit``; the predicted usage of ``model`` goes into every epoch's logs (and History)."""
        return model.fit(*args, callbacks=[_LogUsage(self._usage(model)), *(callbacks or [])], **kwargs)

    @property
    def per_channel_dense(self) -> bool:
        """The export the budget is for (``per_channel_dense`` of the prune options, default True)."""
        return self.prune_options.get("per_channel_dense", True)

    def _usage(self, model) -> dict:
        return predict_usage(model, self.per_channel_dense)


class _LogUsage(keras.callbacks.Callback):
    """Adds the model's predicted deployment numbers to the epoch logs, so KerasTuner records them."""

    def __init__(self, usage: dict):
        super().__init__()
        self.usage = usage

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.usage)


def _oracle(oracle, objective, max_trials: int, seed):
    if isinstance(oracle, kt.Oracle):
        return oracle
    kinds = {"random": kt.oracles.RandomSearchOracle, "bayesian": kt.oracles.BayesianOptimizationOracle}
    if oracle not in kinds:
        raise ValueError(f"Expected `oracle` to be 'random', 'bayesian' or a keras_tuner.Oracle. Received: oracle={oracle!r}.")
    return kinds[oracle](objective=objective, max_trials=max_trials, seed=seed)


class BoardFitTuner(kt.Tuner):
    """KerasTuner search for the most accurate pruned variant of ``model`` that fits a board.

    Each trial prunes ``model`` with `prune_to_budget` to a fraction of the budget, checks the
    predicted arena, flash and MACs against the budget, then trains it as KerasTuner does.
    Searched: ``allocations`` × ``modes`` × ``rules`` × ``importances`` × budget fraction in
    ``headroom`` × ``reinitialize``. Chief/worker runs and ``overwrite=False`` resuming are KerasTuner's.

    Args:
        model: a compiled Keras model, a .keras/.h5 path or a function returning one (in a
            chief/worker run every process runs the same script: a path or a seeded function keeps
            the workers' weights identical).
        board: a name of `tflm_export.BOARDS`, or None with ``budget``.
        budget: a `Budget`, or None with ``board``.
        modes: the modes tried ("PA", "FA", "MA").
        rules: the selection rules tried (used by the "paper" allocation).
        importances: the importance criteria tried.
        headroom: ``(min, max)`` fraction of the budget a candidate may use, in (0, 1].
        reinitialize: the values tried: train from scratch (True) or keep the weights (False).
        allocations: "cost" (resource saved per importance removed) and/or "paper" (the mode's selection).
        compile_kwargs: ``model.compile`` arguments, instead of ``model``'s compile config.
        objective: the KerasTuner objective, e.g. "val_accuracy".
        max_trials: trials to run.
        executions_per_trial: trainings per trial.
        oracle: "random", "bayesian" or a `keras_tuner.Oracle` (then ``objective``, ``max_trials``
            and ``seed`` are its own).
        seed: the oracle's seed.
        config: the `PruneConfig` of every trial (its ``importance`` and ``rule`` are tuned).
        prune_options: more `PruneConfig` fields or `prune_to_budget` arguments (``round_to``, ``step``,
            ``per_channel_dense=False`` for a budget of the per-tensor Dense export, which `export_best` then makes).
        unsafe: load a model file with Lambda layers (Keras ``safe_mode=False``).
        directory: the KerasTuner project folder's parent.
        project_name: the KerasTuner project's name.
        overwrite: start afresh instead of resuming.
        **kwargs: more `keras_tuner.Tuner` arguments.

    Raises:
        BudgetError: neither or both of ``board`` and ``budget``, a bad ``headroom``, or a budget
            whose ``headroom`` lower end pruning cannot reach (with the smallest reachable usage).
        ModelError: ``model`` is not a model, path or function.
        ValueError: an empty or unknown list of values, or ``prune_options`` setting a tuned argument.

    Example:
    ```python
    tuner = BoardFitTuner(model, board="nano33ble", max_trials=20, directory="search")
    tuner.search(x, y, validation_data=(xv, yv), epochs=3)
    best = tuner.export_best("out/best", x[:200], test_inputs=xt, labels=yt)
    ```
    """

    def __init__(self, model, *, board=None, budget=None, modes=MODES, rules=RULES,
                 importances=("l1", "l2", "bn_gamma"), headroom=(0.7, 1.0), reinitialize=(False, True),
                 allocations=ALLOCATIONS, compile_kwargs=None, objective="val_accuracy", max_trials: int = 10,
                 executions_per_trial: int = 1, oracle="random", seed=None, config: PruneConfig | None = None,
                 prune_options=None, unsafe=False, directory=None, project_name="board_fit", overwrite=False,
                 **kwargs):
        budget, self.board = resolve_budget(budget, board)
        if budget is None:
            raise BudgetError("Expected board= (e.g. 'nano33ble') or budget=Budget(ram=..., flash=...). Received neither.")
        hypermodel = BoardFitHyperModel(model, budget, modes=modes, rules=rules, importances=importances,
                                        headroom=headroom, reinitialize=reinitialize, allocations=allocations,
                                        compile_kwargs=compile_kwargs, config=config, prune_options=prune_options,
                                        unsafe=unsafe)
        hypermodel.check_reachable()
        super().__init__(_oracle(oracle, objective, max_trials, seed), hypermodel, directory=directory,
                         project_name=project_name, overwrite=overwrite, executions_per_trial=executions_per_trial,
                         **kwargs)

    @property
    def budget(self) -> Budget:
        return self.hypermodel.budget

    def run_trial(self, trial, *args, **kwargs):
        """KerasTuner's trial (build, fit ``executions_per_trial`` times, checkpoint the best epoch);
        a budget that cannot be met fails the trial without retries. Writes the trial's record."""
        try:
            histories = super().run_trial(trial, *args, **kwargs)
        except BudgetError as exc:
            raise kt.errors.FailedTrialError(str(exc)) from None  # no retry: the same budget fails again
        fraction = trial.hyperparameters.get("budget_fraction")
        record = {"trial_id": trial.trial_id, "tuner_id": self.tuner_id, "values": dict(trial.hyperparameters.values),
                  "budget": self.budget.get_config(), "target": scale_budget(self.budget, fraction).get_config(),
                  "predicted": {k: histories[0].history[k][-1] for k in USAGE}}
        write_json(os.path.join(self.get_trial_dir(trial.trial_id), RECORD), record)
        return histories

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        # KerasTuner 1.4 imports tensorboard here even without a TensorBoard callback, and
        # TensorFlow 2.21 no longer installs it: only a TensorBoard callback needs it.
        if any(type(c).__name__ == "TensorBoard" for c in callbacks):
            super()._configure_tensorboard_dir(callbacks, trial, execution)

    def points(self) -> list:
        """`TrialPoint` of every completed trial, best first (in the chief or a single process)."""
        if not hasattr(self.oracle, "trials"):
            raise RuntimeError("Trial results live in the chief's oracle: call this in the chief once search() "
                               "returns, or later in a process without the KERASTUNER_* variables, with the same "
                               "directory and overwrite=False (it reloads the project as worker 'tuner0' saved it).")
        points = []
        for trial in self.oracle.trials.values():
            if trial.status != "COMPLETED" or trial.score is None or not trial.metrics.exists(USAGE[0]):
                continue
            metric = {k: int(round(trial.metrics.get_last_value(k))) for k in USAGE}
            record = read_json(os.path.join(self.get_trial_dir(trial.trial_id), RECORD)) or {}
            points.append(TrialPoint(trial.trial_id, float(trial.score), dict(trial.hyperparameters.values),
                                     metric["predicted_arena_bytes"], metric["predicted_flash_bytes"],
                                     metric["macs"], metric["params"], record.get("tuner_id")))
        maximize = self.oracle.objective.direction == "max"
        return sorted(points, key=lambda p: -p.score if maximize else p.score)

    def summary(self, print_fn=print) -> str:
        """One line per completed trial, best first: objective, hyperparameters, predicted usage."""
        name = self.oracle.objective.name
        lines = [f"Board-fit search for {self.board or self.budget}: {name}, predicted arena / flash / MACs"]
        for p in self.points():
            v = p.values
            lines.append(f"  trial {p.trial_id} {name} {p.score:.4f} | {v.get('mode')} {v.get('rule')} "
                         f"{v.get('importance')} budget x{v.get('budget_fraction', 1):.2f} "
                         f"{'scratch' if v.get('reinitialize') else 'weights'} | arena {p.arena_bytes:,} B | "
                         f"flash {p.flash_bytes:,} B | MACs {p.macs:,}" + (f" | {p.tuner_id}" if p.tuner_id else ""))
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def plot(self, path: str) -> str:
        """Objective vs predicted arena, flash and MACs of every completed trial (PNG), one marker per
        mode, the budget's limits dashed, the best trial starred."""
        return plot_trials(self.points(), path, self.budget, self.oracle.objective.name, self.board)

    def export_best(self, out_dir: str, representative_data, *, test_inputs=None, labels=None, candidates: int = 3,
                    overwrite: bool = False, name: str = "model") -> ExportedTrial:
        """Export the best trial's model with `tflm_export.export` (int8, measured on the real TFLM
        runtime, firmware sources) into ``out_dir``; when the measurement does not fit the budget,
        the next best of the first ``candidates`` trials is exported in its place (if none fits,
        the last one tried stays, with ``fits=False``). Prints the report."""
        import tflm_export

        trials = self.oracle.get_best_trials(candidates)
        if not trials:
            raise RuntimeError(f"No completed trial in {self.project_dir!r}: run search() first.")
        for index, trial in enumerate(trials):
            model = self.load_model(trial)
            report = tflm_export.export(model, representative_data, out_dir, budget=None if self.board else self.budget,
                                        board=self.board, test_inputs=test_inputs, labels=labels, name=name,
                                        overwrite=overwrite or index > 0,
                                        per_channel_dense=self.hypermodel.per_channel_dense)
            result = ExportedTrial(trial.trial_id, float(trial.score), dict(trial.hyperparameters.values), report,
                                   out_dir, model)
            fit = "fits" if report.fits else "DOES NOT FIT"
            print(f"Trial {trial.trial_id} ({self.oracle.objective.name} {trial.score:.4f}) measured on TFLM: "
                  f"arena {report.arena_bytes:,} B, flash {report.flash_bytes:,} B: {fit} {self.board or self.budget}")
            if report.fits:
                break
        report.summary()
        return result
