"""`BoardFitHyperModel`: the pruned variants of one model that fit a budget, one per KerasTuner trial.

Each ``build(hp)`` prunes the base model with `prune_to_budget` to a fraction of the budget (mode,
selection rule, allocation, importance and training from scratch are the hyperparameters) and checks
the predicted usage (`predict_usage`: arena, flash, MACs) against the budget before training.
"""
from __future__ import annotations

import dataclasses
import json
import os

import keras
import keras_tuner as kt

from tflm_export.budget import Budget, describe_over
from tflm_export.micro.planner import align

from keras_cprune.config import (ALLOCATIONS, CRITERIA, MODES, OPTIONS, RULES, PruneConfig, SearchConfig, check_mode,
                                 resolve_config)
from keras_cprune.errors import BudgetError, ModelError, TunerError

USAGE = ("arena_bytes", "flash_bytes", "macs", "params")  # predicted trial metrics besides the objective
_TUNED = {"mode", "ratio", "importance", "rule", "reinitialize", "allocation", "budget", "verify", "config", "board",
          "target", "margin"}


def scale_budget(budget: Budget, fraction: float) -> Budget:
    """``budget`` with every limit multiplied by ``fraction`` (rounded down, at least 1)."""
    return dataclasses.replace(budget, **{k: max(1, int(v * fraction)) for k, v in budget.get_config().items()
                                          if v is not None})


def predict_usage(model, per_channel_dense: bool = True, target=None) -> dict:
    """Predicted deployment of ``model`` once trained, exported with ``per_channel_dense`` as
    `tflm_export.convert`'s: TFLM arena on the ``target`` build (as `estimate_arena`), flatbuffer
    flash (bytes, from the converter schedule's flatbuffer), MACs per inference and parameters."""
    from keras_cprune.deploy.arena import estimate_deployment
    from keras_cprune.analysis.complexity import report_from_graph
    from keras_cprune.graph.reader import read_graph
    from keras_cprune.deploy.converter_order import schedule_of

    graph = read_graph(model)
    report = report_from_graph(graph)
    arena, flash = estimate_deployment(graph, assume_trained=True, per_channel_dense=per_channel_dense,
                                       schedule=schedule_of(model, graph, per_channel_dense), target=target)
    return {"arena_bytes": arena.bytes, "flash_bytes": int(flash), "macs": int(report.macs),
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


class _LogUsage(keras.callbacks.Callback):
    """Adds the model's predicted deployment numbers to the epoch logs, so KerasTuner records them."""

    def __init__(self, usage: dict):
        super().__init__()
        self.usage = usage

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.usage)


def _values(name: str, values, allowed=None) -> tuple:
    values = (values,) if isinstance(values, (str, bool)) else tuple(values)
    if not values or (allowed is not None and any(v not in allowed for v in values)):
        among = "" if allowed is None else f" among {allowed}"
        raise TunerError(f"Expected `{name}` to be a non-empty list of values{among}. Received: {name}={values!r}.")
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
    replaces; ``prune_options``: its other fields, or `prune_to_budget` arguments (``search``: a
    `SearchConfig` whose ``allocation`` each trial replaces; its ``verify`` is always False).
    ``target``: the TFLM build (a ``tflm_export.micro.targets.Target`` or None: the PyPI runtime) whose arena +
    ``margin`` bytes must fit ``budget.ram``.
    """

    def __init__(self, model, budget: Budget, *, target=None, margin: int = 0, modes=MODES, rules=RULES, importances=("l1", "l2", "bn_gamma"),
                 headroom=(0.7, 1.0), reinitialize=(False, True), allocations=ALLOCATIONS, compile_kwargs=None,
                 config: PruneConfig | None = None, prune_options=None, unsafe=False, name="board_fit"):
        super().__init__(name=name)
        self._kind, self._source, self._model, self.unsafe = _source_kind(model), model, None, unsafe
        self.budget, self.target, self.margin = budget, target, margin
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
            raise TunerError(f"prune_options= may not set {sorted(_TUNED & set(options))}: the tuner chooses them "
                             f"(a PruneConfig goes to config=). Received: prune_options={options!r}.")
        self.config = resolve_config(config, **{k: options.pop(k) for k in OPTIONS if k in options})
        self.search = options.pop("search", None) or SearchConfig()
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
            prune_to_budget(self.base_model, scale_budget(self.budget, low), target=self.target, margin=self.margin,
                            mode=self.modes[0], config=self.config, search=dataclasses.replace(self.search, verify=False),
                            **self.prune_options)
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
        model = prune_to_budget(self.base_model, scale_budget(self.budget, v["budget_fraction"]), target=self.target,
                                margin=self.margin, mode=v["mode"], config=config, reinitialize=v["reinitialize"],
                                search=dataclasses.replace(self.search, allocation=v["allocation"], verify=False),
                                **self.prune_options)
        usage = self._usage(model)
        fits = self.budget.check(ram=align(usage["arena_bytes"] + self.margin), flash=usage["flash_bytes"],
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
        return predict_usage(model, self.per_channel_dense, self.target)
