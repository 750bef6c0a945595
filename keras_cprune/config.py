"""`PruneConfig`: the pruning options shared by `prune`, `prune_to_budget`, `prune_during_training`,
`callbacks.FilterPruningStep` and the tuner; `SearchConfig`: how `prune_to_budget` searches. Their
defaults and validation live in this one place; the CLI, the tuner and the callbacks read them here.

It imports nothing of the project but its errors, so every module may use it.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Callable, Union

from keras_cprune.errors import BudgetError, PruningError, UnknownOptionError

MODES = ("PA", "FA", "MA")  # parameter-, FLOPs- and memory-aware pruning
CRITERIA = ("l1", "l2", "bn_gamma", "random")
RULES = ("mean", "coverage", "all")


def check_mode(mode: str) -> str:
    """``mode`` in upper case if it is one of `MODES`, else a `PruningError` naming it."""
    normalized = str(mode).upper()
    if normalized not in MODES:
        raise PruningError(f"Unknown pruning mode {mode!r}. Expected one of {MODES} "
                           "(parameter-, FLOPs- or memory-aware).")
    return normalized


def check_rule(rule) -> str:
    """``rule`` if it is one of `RULES`, else a `PruningError` naming it."""
    if rule not in RULES:
        raise PruningError(f"Unknown selection rule {rule!r}. Expected one of {RULES}. Received: rule={rule!r}.")
    return rule


def check_per_channel_dense(per_channel_dense) -> bool:
    """``per_channel_dense`` (`tflm_export.convert`'s export option) if it is a bool, else a `PruningError`."""
    if not isinstance(per_channel_dense, bool):
        raise PruningError("per_channel_dense must be True (Dense weights quantized per output unit, the default "
                           f"export) or False (per tensor). Received: per_channel_dense={per_channel_dense!r}.")
    return per_channel_dense


def check_importance(importance):
    """``importance`` if it is one of `CRITERIA` or a callable, else a `PruningError` naming it."""
    if importance is None:
        raise PruningError("`importance` is None: the config was saved with a callable importance, which "
                           "get_config() cannot serialize. Pass the callable again (config['importance'] = fn).")
    if not callable(importance) and importance not in CRITERIA:
        raise PruningError(f"Unknown importance criterion {importance!r}. Expected one of {CRITERIA} or a callable "
                           f"fn(layer) -> one score per output channel. Received: importance={importance!r}.")
    return importance


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class PruneConfig:
    """How channels are chosen and how far a layer may shrink, for every pruning entry point.

    Args:
        importance: which filters of a group go first, lowest score first: "l1" (kernel L1 norm),
            "l2", "bn_gamma" (|BatchNorm gamma|), "random" (seeded by ``seed``), or a callable
            ``fn(layer) -> one score per output channel``.
        rule: which channel groups a mode selects (see `keras_cprune.pruning.selection`): "mean" (share at
            least ``threshold`` x the mean share), "coverage" (top shares covering ``coverage`` of
            the total) or "all" (uniform).
        threshold: the "mean" rule's factor, >= 0.
        coverage: the "coverage" rule's fraction of the summed cost, in [0, 1].
        min_filters: fewest output channels any pruned layer keeps, >= 1.
        min_keep: fewest channels a layer keeps as a fraction of its width, in [0, 1].
        round_to: kept widths of layers that shrink are rounded up to a multiple of it (4 or 8
            for SIMD kernels), >= 1.
        seed: seed of the "random" importance, a non-negative integer.

    Raises:
        PruningError: a field out of range or of the wrong type; the message names the field.

    Example:
    ```python
    config = keras_cprune.PruneConfig(importance="l2", round_to=4)
    pruned = keras_cprune.prune(model, "MA", 0.5, config=config)
    again = keras_cprune.PruneConfig.from_config(config.get_config())
    wider = dataclasses.replace(config, min_keep=0.5)
    ```
    """

    importance: Union[str, Callable] = "l1"
    rule: str = "mean"
    threshold: float = 1.0
    coverage: float = 0.8
    min_filters: int = 1
    min_keep: float = 0.25
    round_to: int = 1
    seed: int = 0

    def __post_init__(self):
        check_importance(self.importance)
        check_rule(self.rule)
        if not _is_real(self.threshold) or self.threshold < 0:
            raise PruningError(f"`threshold` is the factor of the mean share the 'mean' rule selects from and must be "
                               f"a number >= 0. Received: threshold={self.threshold!r}.")
        if not _is_real(self.coverage) or not 0 <= self.coverage <= 1:
            raise PruningError(f"`coverage` is the fraction of the summed cost the 'coverage' rule selects and must "
                               f"be in [0, 1]. Received: coverage={self.coverage!r}.")
        if not _is_int(self.min_filters) or self.min_filters < 1:
            raise PruningError(f"`min_filters` must be an integer >= 1: a layer with 0 filters would disconnect the "
                               f"model. Received: min_filters={self.min_filters!r}.")
        if not _is_real(self.min_keep) or not 0 <= self.min_keep <= 1:
            raise PruningError(f"`min_keep` is the fraction of each layer's filters no pruning goes under and must be "
                               f"in [0, 1]. Received: min_keep={self.min_keep!r}.")
        if not _is_int(self.round_to) or self.round_to < 1:
            raise PruningError(f"`round_to` must be an integer >= 1 (e.g. 4 or 8 for SIMD kernels). "
                               f"Received: round_to={self.round_to!r}.")
        if not _is_int(self.seed) or self.seed < 0:
            raise PruningError(f"`seed` must be an integer >= 0. Received: seed={self.seed!r}.")

    def options(self) -> dict:
        """The fields as keyword arguments of the planning engine (`PruneContext.choose`)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def get_config(self) -> dict:
        """JSON-ready fields. A callable ``importance`` cannot be serialized: it is stored as ``None``,
        and `from_config` refuses that until the callable is put back (``config["importance"] = fn``)."""
        config = self.options()
        if callable(self.importance):
            config["importance"] = None
        return config

    @classmethod
    def from_config(cls, config: dict) -> "PruneConfig":
        """The `PruneConfig` whose `get_config` gave ``config``."""
        return cls(**config)


OPTIONS = tuple(f.name for f in dataclasses.fields(PruneConfig))
SEARCH_ARGUMENTS = ("budget", "allocation", "step", "verify")  # of a budget search, not of a ratio pruning


def resolve_config(config: PruneConfig | None = None, **options) -> PruneConfig:
    """``config`` (default: `PruneConfig()`) with the fields named in ``options`` replaced: an
    explicit keyword overrides the same field of ``config``."""
    if config is None:
        config = PruneConfig()
    elif not isinstance(config, PruneConfig):
        raise PruningError(f"Expected `config` to be a keras_cprune.PruneConfig or None. Received: config={config!r} "
                           f"of type {type(config).__name__}.")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        search = sorted(set(unknown) & set(SEARCH_ARGUMENTS))
        hint = (f" {search} belong to pruning to a budget: prune_to_budget(model, budget, mode=..., "
                f"search=SearchConfig(allocation=..., step=..., verify=...))." if search else "")
        raise UnknownOptionError(f"Unknown pruning option(s) {unknown}. Expected the fields of PruneConfig {OPTIONS}. "
                                 f"Received: {', '.join(f'{k}={options[k]!r}' for k in unknown)}.{hint}")
    return dataclasses.replace(config, **options) if options else config


ALLOCATIONS = ("cost", "paper")
VERIFY = ("auto", True, False, "every_step")


@dataclass(frozen=True)
class SearchConfig:
    """How `prune_to_budget` and `plan_to_budget` search for the least pruning that fits.

    Args:
        allocation: "cost": each step cuts the group saving most of the binding resource per unit
            of importance removed; "paper": each step cuts ``step`` of every group the mode's rule
            selects.
        step: fraction of a group's channels cut per search step, in (0, 1).
        verify: "auto" (check the result on its int8 flatbuffer: with a ``target``/``board`` its arena
            predicted for that build, else measured on the TFLM runtime when ``tflite-micro`` is
            installed), True (require it), False (trust the prediction) or "every_step" (check every
            step instead of predicting).

    Raises:
        BudgetError: a field out of range; the message names it.

    Example:
    ```python
    plan = keras_cprune.plan_to_budget(model, keras_cprune.Budget(ram="64KB"), mode="MA",
                                       search=keras_cprune.SearchConfig(allocation="paper", verify=False))
    ```
    """

    allocation: str = "cost"
    step: float = 0.1
    verify: Union[str, bool] = "auto"

    def __post_init__(self):
        if self.allocation not in ALLOCATIONS:
            raise BudgetError(f'`allocation` must be "cost" (resource saved per importance) or "paper" (the mode\'s '
                              f'selection rule). Received: allocation={self.allocation!r}.')
        if not _is_real(self.step) or not 0 < self.step < 1:
            raise BudgetError(f"`step` is the fraction of a group's channels removed per search step and must be in "
                              f"(0, 1). Received: step={self.step!r}.")
        if not any(self.verify is v or (isinstance(v, str) and self.verify == v) for v in VERIFY):
            raise BudgetError(f'`verify` must be "auto", True, False or "every_step". Received: verify={self.verify!r}.')

    def get_config(self) -> dict:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> "SearchConfig":
        """The `SearchConfig` whose `get_config` gave ``config``."""
        return cls(**config)
