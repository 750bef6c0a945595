"""BoardFitTuner: the most accurate pruned model that fits a board, searched with KerasTuner.

Every trial builds one of `hypermodel.BoardFitHyperModel`'s pruned variants (pruned to a fraction
of the budget and checked against it by prediction before training), then trains it as KerasTuner
does; `export_best` measures the best ones on TFLM. Chief/worker runs
(``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``) and resuming
(``overwrite=False``) are KerasTuner's own.
"""
from __future__ import annotations

import os

import keras_tuner as kt

from tflm_export.boards import resolve_board
from tflm_export.budget import Budget, parse_margin

from keras_cprune.config import (ALLOCATIONS, MODES, RULES, PruneConfig)
from keras_cprune.errors import BudgetError, NoTrialError, TunerError
from keras_cprune.tuner.hypermodel import USAGE, BoardFitHyperModel, scale_budget
from keras_cprune.tuner.trials import RECORD, ExportedTrial, TrialPoint, plot_trials, read_json, write_json

def is_worker() -> bool:
    """True in a KerasTuner worker process (``KERASTUNER_ORACLE_IP`` set, tuner id without "chief")."""
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "")


def _oracle(oracle, objective, max_trials: int, seed):
    if isinstance(oracle, kt.Oracle):
        return oracle
    kinds = {"random": kt.oracles.RandomSearchOracle, "bayesian": kt.oracles.BayesianOptimizationOracle}
    if oracle not in kinds:
        raise TunerError(f"Expected `oracle` to be 'random', 'bayesian' or a keras_tuner.Oracle. Received: oracle={oracle!r}.")
    return kinds[oracle](objective=objective, max_trials=max_trials, seed=seed)


class BoardFitTuner(kt.Tuner):
    """KerasTuner search for the most accurate pruned variant of ``model`` that fits a board.

    Each trial prunes ``model`` with `prune_to_budget` to a fraction of the budget, checks the
    predicted arena (of the board's TFLM build, + ``margin``), flash and MACs against the budget,
    then trains it as KerasTuner does.
    Searched: ``allocations`` × ``modes`` × ``rules`` × ``importances`` × budget fraction in
    ``headroom`` × ``reinitialize``. Chief/worker runs and ``overwrite=False`` resuming are KerasTuner's.

    Args:
        model: a compiled Keras model, a .keras/.h5 path or a function returning one (in a
            chief/worker run every process runs the same script: a path or a seeded function keeps
            the workers' weights identical).
        board: a name of `tflm_export.BOARDS` (or a ``tflm_export.Board``): its budget unless
            ``budget``, its TFLM build unless ``target``; or None with ``budget``.
        budget: a `Budget`, or None with ``board``.
        target: the TFLM build the arena is predicted for (``"cortex-m4/cmsis_nn"``); None: the
            board's, else the PyPI runtime's.
        margin: bytes reserved above the arena: ram is judged on arena + margin, here and in
            `export_best`. Default 0.
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
        prune_options: more `PruneConfig` fields or `prune_to_budget` arguments (``round_to``, ``search``,
            ``per_channel_dense=False`` for a budget of the per-tensor Dense export, which `export_best` then makes).
        unsafe: load a model file with Lambda layers (Keras ``safe_mode=False``).
        directory: the KerasTuner project folder's parent.
        project_name: the KerasTuner project's name.
        overwrite: start afresh instead of resuming.
        **kwargs: more `keras_tuner.Tuner` arguments.

    Raises:
        BudgetError: neither ``board`` nor ``budget``, an unknown board or target, a bad ``margin``
            or ``headroom``, or a budget
            whose ``headroom`` lower end pruning cannot reach (with the smallest reachable usage).
        ModelError: ``model`` is not a model, path or function.
        TunerError: an empty or unknown list of values, ``prune_options`` setting a tuned argument,
            or an unknown ``oracle``.

    Example:
    ```python
    tuner = BoardFitTuner(model, board="nano33ble", max_trials=20, directory="search")
    tuner.search(x, y, validation_data=(xv, yv), epochs=3)
    best = tuner.export_best("out/best", x[:200], test_inputs=xt, labels=yt)
    ```
    """

    def __init__(self, model, *, board=None, budget=None, target=None, margin=0, modes=MODES, rules=RULES,
                 importances=("l1", "l2", "bn_gamma"), headroom=(0.7, 1.0), reinitialize=(False, True),
                 allocations=ALLOCATIONS, compile_kwargs=None, objective="val_accuracy", max_trials: int = 10,
                 executions_per_trial: int = 1, oracle="random", seed=None, config: PruneConfig | None = None,
                 prune_options=None, unsafe=False, directory=None, project_name="board_fit", overwrite=False,
                 **kwargs):
        budget, self.board, target = resolve_board(budget, board, target)
        if budget is None:
            raise BudgetError("Expected board= (e.g. 'nano33ble') or budget=Budget(ram=..., flash=...). Received neither.")
        hypermodel = BoardFitHyperModel(model, budget, target=target, margin=parse_margin(margin), modes=modes, rules=rules, importances=importances,
                                        headroom=headroom, reinitialize=reinitialize, allocations=allocations,
                                        compile_kwargs=compile_kwargs, config=config, prune_options=prune_options,
                                        unsafe=unsafe)
        oracle = _oracle(oracle, objective, max_trials, seed)  # a bad oracle fails before the reachability prune
        hypermodel.check_reachable()
        super().__init__(oracle, hypermodel, directory=directory,
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
            raise NoTrialError("Trial results live in the chief's oracle: call this in the chief once search() "
                               "returns, or later in a process without the KERASTUNER_* variables, with the same "
                               "directory and overwrite=False (it reloads the project as worker 'tuner0' saved it).")
        points = []
        for trial in self.oracle.trials.values():
            if trial.status != "COMPLETED" or trial.score is None or not trial.metrics.exists(USAGE[0]):
                continue
            metric = {k: int(round(trial.metrics.get_last_value(k))) for k in USAGE}
            record = read_json(os.path.join(self.get_trial_dir(trial.trial_id), RECORD)) or {}
            points.append(TrialPoint(trial.trial_id, float(trial.score), dict(trial.hyperparameters.values),
                                     metric["arena_bytes"], metric["flash_bytes"],
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
            raise NoTrialError(f"No completed trial in {self.project_dir!r}: run search() first.")
        for index, trial in enumerate(trials):
            model = self.load_model(trial)
            report = tflm_export.export(model, representative_data, out_dir, budget=self.budget, board=self.board,
                                        target=self.hypermodel.target, margin=self.hypermodel.margin,
                                        test_inputs=test_inputs, labels=labels, name=name,
                                        overwrite=overwrite or index > 0,
                                        per_channel_dense=self.hypermodel.per_channel_dense)
            result = ExportedTrial(trial.trial_id, float(trial.score), dict(trial.hyperparameters.values), report,
                                   out_dir, model)
            fit = "fits" if report.fits else "DOES NOT FIT"
            print(f"Trial {trial.trial_id} ({self.oracle.objective.name} {trial.score:.4f}) on TFLM: arena "
                  f"{report.arena.bytes:,} B {report.arena.source} for {report.target} + margin {report.margin:,} B, flash {report.flash_bytes:,} B: {fit} {self.board or self.budget}")
            if report.fits:
                break
        report.summary()
        return result
