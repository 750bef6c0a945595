"""prune / apply_plan: complexity-driven filter pruning of a Keras model into a smaller one."""
from __future__ import annotations

from .budget import fit_budget, resolve_verifier
from .dependency import build_dependencies
from .graph import read_graph
from .plan import PruningPlan, removed_units_of
from .planning import PruneContext
from .rebuild import rebuild


def prune(model, mode: str = "PA", ratio: float = 0.5, *, importance="l1", rule: str = "mean",
          threshold: float = 1.0, coverage: float = 0.8, min_filters: int = 1, round_to: int = 1,
          min_keep: float = 0.25, reinitialize: bool = False, seed: int = 0, return_plan: bool = False,
          budget=None, verify="auto", representative_data=None, step: float = 0.1, allocation: str = "cost",
          verbose="auto", progress=None, input_shape=None):
    """Complexity-driven filter pruning: a new, smaller dense model of the same class.

    ``mode`` ("PA", "FA", "MA") picks the channel groups holding a large share of the model's
    parameters, FLOPs or activation memory (see `keras_cprune.selection` for ``rule``,
    ``threshold`` and ``coverage``); ``ratio`` of each selected group's filters are removed,
    lowest ``importance`` first ("l1", "l2", "bn_gamma", "random" or ``fn(layer) -> scores``).
    No layer keeps fewer than ``min_keep`` of its filters (rounded up to ``round_to``) nor
    ``min_filters``. Kept weights are copied, or freshly initialized with ``reinitialize=True``
    (the paper trains the pruned architecture from scratch). The model passed in is never modified.
    ``input_shape`` fixes free input dimensions (``keras.Input((None, None, 3))``).

    With ``budget`` (a `Budget` with ``ram``/``flash`` bytes and/or ``macs``), ``ratio`` is not
    used: the least pruning that fits is searched (see `budget.search`: with ``allocation="cost"``
    each step cuts ``step`` of the group saving most of the binding resource per importance removed;
    with "paper", of the groups ``mode`` selects) on the TFLM arena and flash predicted in the
    converter's op order. ``verify`` ("auto": when ``tflite-micro`` is
    installed) then converts the result to int8 (calibrated on ``representative_data``, else 32
    uniform [0, 1) samples) and measures it on the TFLM runtime, searching on while the
    measurement is over; ``verify="every_step"`` measures every step instead of predicting.
    ``verbose``: 0 silent, 1 a progress bar, 2 one line per search, "auto" as ``Model.fit``.
    """
    context = PruneContext.of(model, input_shape=input_shape)
    options = dict(importance=importance, rule=rule, threshold=threshold, coverage=coverage,
                   min_filters=min_filters, round_to=round_to, seed=seed, min_keep=min_keep)
    if budget is None:
        plan, removed = context.plan(mode, ratio, **options)
    else:
        verifier, every_step = resolve_verifier(context, verify, representative_data)
        plan, removed = fit_budget(context, mode, budget, verify=verifier, progress=progress, verbose=verbose,
                                   step=step, allocation=allocation, estimate=verifier if every_step else None,
                                   **options)
    pruned = rebuild(context.model, context.deps, removed, weights="none" if reinitialize else "slice")
    return (pruned, plan) if return_plan else pruned


def apply_plan(model, plan: PruningPlan, *, reinitialize: bool = False):
    """Rebuild ``model`` (same architecture the plan was made for) as ``plan`` says."""
    graph = read_graph(model)
    deps = build_dependencies(graph)
    return rebuild(model, deps, removed_units_of(plan, deps), weights="none" if reinitialize else "slice")
