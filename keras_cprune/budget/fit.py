"""`fit_budget`: the least pruning that fits a `Budget`, searched by prediction, then measured.

`search.search` finds the least pruning whose predicted `usage.Usage` fits; with a
verifier (`tflm_verifier`: the converted int8 model, its arena measured on the TFLM runtime or, for
a target build, predicted from the flatbuffer), the result is checked and, while over, searched
again against a tighter limit. `SearchProgress` shows how far a search has come.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Callable

import numpy as np

from tflm_export.budget import Budget, describe_over

from keras_cprune.budget.search import Step, search
from keras_cprune.config import PruneConfig, SearchConfig
from keras_cprune.errors import BudgetError
from keras_cprune.pruning.context import PruneContext
from keras_cprune.graph.clone import as_trained
from keras_cprune.pruning.rebuild import rebuild
from keras_cprune.pruning.selection import select_groups
from keras_cprune.budget.usage import Usage, usage_estimator

__all__ = ["fit_budget", "resolve_verifier", "tflm_verifier", "check_budget", "SearchProgress"]


def tflm_verifier(context: PruneContext, representative_data=None, seed: int = 0) -> Callable[[set], Usage]:
    """A checker of a pruning state's `Usage` on the converted int8 model, the figure `tflm_export.export` judges.

    Each call rebuilds the pruned model and converts it to int8 with tflm_export; the arena is
    that of the context's ``target`` build predicted from the flatbuffer
    (`tflm_export.predict_arena_from_tflite`), or without a target the minimal arena measured on the
    TFLM runtime; flash is the flatbuffer size, plus on a Cortex-M target the TFLM code its op
    resolver links (where measured: `tflm_export.firmware.code_size`).

    Args:
        context: the model being pruned.
        representative_data: inputs that calibrate the int8 conversion; None: 32 uniform [0, 1)
            samples (sizes do not depend on values, but for an all-zero Dense bias, which the
            converter drops: the model is measured as once trained).
        seed: of those samples.

    Returns:
        ``measure(removed) -> Usage`` for a set of removed units.
    """
    from tflm_export.convert import convert
    from tflm_export.firmware.code_size import code_bytes
    from tflm_export.micro.flatbuffer import read_model
    from tflm_export.micro.planner import predict_arena_from_tflite
    from tflm_export.runtime.runner import find_min_arena

    if representative_data is None:
        shape = (32,) + tuple(context.graph.tensors[context.graph.inputs[0]].shape)
        representative_data = np.random.default_rng(seed).uniform(0, 1, shape).astype("float32")

    def measure(removed: set) -> Usage:
        tflite = convert(as_trained(rebuild(context.model, context.deps, removed)), representative_data,
                         per_channel_dense=context.per_channel_dense)
        if context.target is None:
            arena = find_min_arena(tflite, predict_arena_from_tflite(tflite).bytes)
        else:
            arena = predict_arena_from_tflite(tflite, context.target)
        code = 0 if context.target is None else code_bytes(read_model(tflite).op_counts, context.target.name) or 0
        return Usage(arena, len(tflite) + code, context.price(removed).macs, context.margin)

    return measure


def resolve_verifier(context: PruneContext, verify, representative_data=None) -> tuple:
    """The check on the converted model `prune`'s ``verify`` argument asks for (`tflm_verifier`).

    Args:
        context: the model being pruned.
        verify: `SearchConfig.verify`: "auto" checks the result when it can (with a ``target``
            always, else when the ``tflite-micro`` runtime is installed), True requires it, False
            never, "every_step" checks every search step instead of predicting.
        representative_data: passed to `tflm_verifier`.

    Returns:
        ``(measure or None, measure every step?)``.

    Raises:
        BudgetError: True without the ``tflite-micro`` runtime.
    """
    if verify is False:
        return None, False
    if context.target is not None:  # the flatbuffer's arena on the target build: no runtime needed
        return tflm_verifier(context, representative_data), verify == "every_step"
    try:
        import tflite_micro  # noqa: F401
    except ImportError:
        if verify == "auto":
            return None, False
        raise BudgetError("verify=True measures the result on the TFLite Micro runtime, which is not installed: "
                          "`pip install tflite-micro`, or pass verify=False to trust the prediction.") from None
    return tflm_verifier(context, representative_data), verify == "every_step"


class SearchProgress:
    """One updating line per budget search, as ``Model.fit``'s progress bar.

    The line says how far (%) the binding resource has come from the unpruned model to the
    budget, with the step's arena, flash and MACs.

    Args:
        budget: the `Budget` searched for.
        verbose: 0 silent, 1 the line updated in place, 2 only its final state, "auto" 1 on a
            terminal and 2 otherwise.
    """

    def __init__(self, budget: Budget, verbose="auto"):
        if verbose == "auto":
            verbose = 1 if sys.stdout.isatty() else 2
        self.budget, self.verbose, self.start, self.steps, self.width = budget, verbose, None, 0, 0

    def __call__(self, step: Step) -> None:
        self.start, self.steps = self.start or step.usage, self.steps + 1
        if self.verbose == 1:
            self._show(self.line(step.usage), end="")

    def percent(self, usage: Usage) -> int:
        """How far (%) ``usage`` has come from the unpruned model's to the budget, for the resource least far."""
        done = [1.0]
        for name, limit in self.budget.get_config().items():
            start, used = self.start.amount(name), usage.amount(name)
            if limit is not None and start > limit:
                done.append(max(0.0, min(1.0, (start - used) / (start - limit))))
        return int(100 * min(done))

    def line(self, usage: Usage, measured: Usage | None = None) -> str:
        arena, flash = f"arena {usage.arena.bytes:,} B", f"flash {usage.flash:,} B"
        if measured is not None:
            checked = "measured" if measured.arena.source == "measured" else "of the .tflite"
            arena = f"arena {measured.arena.bytes:,} B {checked} ({usage.arena.bytes:,} predicted)"
            flash = f"flash {measured.flash:,} B measured ({usage.flash:,} predicted)"
        return (f"budget search {self.percent(usage):3d}% ({self.steps} steps) - {arena} - {flash} - "
                f"MACs {usage.macs:,}")

    def _show(self, text: str, end: str) -> None:
        sys.stdout.write("\r" + text.ljust(self.width) + end)
        sys.stdout.flush()
        self.width = len(text)

    def close(self, usage: Usage, measured: Usage | None) -> None:
        if self.verbose and self.start is not None:
            self._show(self.line(usage, measured), end="\n")


def check_budget(budget) -> Budget:
    """``budget`` if it is a `Budget` that sets at least one limit.

    A dict is not converted: a `Budget` parses and checks its sizes where it is made.

    Args:
        budget: what `prune` received as ``budget=``.

    Returns:
        ``budget``.

    Raises:
        BudgetError: ``budget`` is not a `Budget` (a dict, say), or sets no limit.
    """
    if not isinstance(budget, Budget):
        raise BudgetError(f"Expected `budget` argument to be a `keras_cprune.Budget`: pass "
                          f"budget=Budget(ram=..., flash=..., macs=...) (a dict d: Budget(**d)). "
                          f"Received: budget={budget!r} (a {type(budget).__name__}).")
    if all(limit is None for limit in budget.get_config().values()):
        raise BudgetError(f"The budget sets no limit; give ram=, flash= and/or macs=. Received: budget={budget!r}.")
    return budget


def fit_budget(context: PruneContext, mode: str, budget: Budget, *, config: PruneConfig | None = None,
               settings: SearchConfig | None = None, verify=None, progress=None, verbose=0, estimate=None) -> tuple:
    """The least pruning that fits ``budget``: predicted, then (with ``verify``) measured.

    While the measurement exceeds a limit, the search goes on against that limit lowered by the
    measured excess over the prediction (always lower than the last search's limit).

    Args:
        context: the model being pruned.
        mode: "PA", "FA" or "MA".
        budget: the `Budget` to fit.
        verify: ``verify(removed) -> Usage`` measured for real (e.g. `tflm_verifier`), or None.
        progress: called with a line of text per search step and per measurement over budget, or None.
        verbose: 0 silent, 1 a progress bar, 2 one line per search, "auto" as ``Model.fit``.
        estimate: ``estimate(removed) -> Usage`` the search uses; None: `usage.usage_estimator`.
        config: how channels and groups are chosen (`PruneConfig`; default: its defaults).
        settings: the search's allocation and step (`SearchConfig`, default: its defaults; its ``verify`` is resolved
            into ``verify``/``estimate`` by the caller, see `resolve_verifier`).

    Returns:
        ``(plan, removed units)``: the plan's ``after`` holds the predicted and (with ``verify``)
        measured arena and flash.

    Raises:
        BudgetError: ``budget`` is not a `Budget` with a limit, or pruning cannot meet it.
    """
    target = check_budget(budget)
    config, settings = config or PruneConfig(), settings or SearchConfig()
    estimate = estimate or usage_estimator(context)
    bar = SearchProgress(target, verbose)
    report = (lambda step: (bar(step), progress(step.line()))) if progress else bar
    limits, removed = target, set()
    while True:
        removed, history = search(context, mode, limits, estimate, config=config, settings=settings, removed=removed,
                                  progress=report)
        measured = verify(removed) if verify else None
        over = measured.over(target) if measured else {}
        if not over:
            break
        limits = _tighter(limits, over, measured, history[-1].usage)
        if progress:
            progress(f"measured over budget ({describe_over(over)}); searching again with {limits.describe()}")
    bar.close(history[-1].usage, measured)
    return _plan(context, mode, target, removed, history[-1], measured, config), removed


def _tighter(limits: Budget, over: dict, measured: Usage, predicted: Usage) -> Budget:
    """``limits`` with each resource ``over`` lowered by the measured excess over the prediction,
    by 16 at least (always lower than the last search's), and to 1 at most."""
    lowered = {name: min(getattr(limits, name) - 16, fit.limit - (measured.amount(name) - predicted.amount(name)))
               for name, fit in over.items()}
    return dataclasses.replace(limits, **{name: max(1, limit) for name, limit in lowered.items()})


def _plan(context: PruneContext, mode: str, budget: Budget, removed: set, last: Step, measured: Usage | None,
          config: PruneConfig):
    """The `PruningPlan` of the search's result, with its predicted and measured arena and flash."""
    selections = select_groups(context.deps, context.report, mode, config)
    return context.describe(mode, last.removed_fraction, removed, selections, config.importance, config.rule,
                            reason=f"pruned to fit {budget.describe()}",
                            measured=measured and (measured.arena, measured.flash))
