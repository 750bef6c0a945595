"""The least pruning that fits a `Budget`, by prediction: `search`.

The search prunes in small steps from the unpruned model and stops at the first state that fits
every limit, so one step less would not have fit. Each step chooses groups the way the
``allocation`` says (`search`); in MA mode with a RAM budget it prunes the groups whose
activations are alive at the predicted arena peak first, since the peak alone sets the arena.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tflm_export.budget import Budget, describe_over

from keras_cprune.errors import BudgetError
from keras_cprune.pruning.importance import unit_scores
from keras_cprune.pruning.context import PruneContext, choose_units
from keras_cprune.config import PruneConfig, SearchConfig, check_mode
from keras_cprune.pruning.selection import select_groups
from keras_cprune.budget.usage import Usage


@dataclass(frozen=True)
class Step:
    """One state the search went through: the fraction of free channels removed, the parameters
    left, the predicted `Usage` and the removed units."""

    removed_fraction: float
    params: int
    usage: Usage
    removed: frozenset = frozenset()

    def line(self) -> str:
        u = self.usage
        return (f"pruned {100 * self.removed_fraction:5.1f}% of channels | params {self.params:>10,} | "
                f"MACs {u.macs:>13,} | arena {u.arena.bytes:>9,} B | flash {u.flash:>9,} B")


def search(context: PruneContext, mode: str, budget: Budget, estimate: Callable[[set], Usage], *,
           config: PruneConfig | None = None, settings: SearchConfig | None = None, removed: set | None = None,
           progress=None) -> tuple[set, list]:
    """Grow the removed-unit set from ``removed`` until ``estimate(removed)`` fits ``budget``.

    ``allocation="cost"``: each step cuts the group whose next ``step`` of channels (lowest
    ``importance`` first) saves the most of the binding resource (the one most over, relatively)
    per unit of importance removed; for RAM only groups alive at the arena peak can save; the last
    cut is the smallest that fits. ``allocation="paper"``: each step cuts ``step`` of every group
    the ``mode``'s rule selects (in MA with RAM over, the groups alive at the arena peak first).
    ``importance``, ``rule`` (...) come from ``config``; ``allocation`` and ``step`` from ``settings``.

    Args:
        context: the model being pruned.
        mode: "PA", "FA" or "MA": the selection rule's complexity measure.
        budget: the limits to fit; a search with a tighter limit gets ``dataclasses.replace(budget, ram=...)``.
        estimate: ``estimate(removed) -> Usage``, e.g. `usage.usage_estimator`.
        config: a `PruneConfig` (default: its defaults): how channels and groups are chosen, and
            the floor no producer goes below: ``min_keep`` of its width (rounded up to
            ``round_to``), at least ``min_filters``.
        settings: a `SearchConfig` (default: its defaults): ``allocation``, and ``step``, the
            fraction of a group's remaining channels cut per step.
        removed: the units removed already (the search continues from there).
        progress: called with each `Step`, or None.

    Returns:
        ``(removed units, [Step, ...])``: the last step fits ``budget``.

    Raises:
        BudgetError: no further pruning is possible; the message gives the smallest usage
            reachable and what bounds it.
    """
    check_mode(mode)
    config, settings = config or PruneConfig(), settings or SearchConfig()
    rng = np.random.default_rng(config.seed)
    groups = [g for g in context.deps.groups if g.prunable]
    scores = {g.id: _normalized(unit_scores(context.deps, g, config.importance, rng), g) for g in groups}
    total_free = sum(int((~g.pinned).sum()) for g in groups)
    removed, history = set(removed or ()), []
    usage = estimate(removed)
    while True:
        history.append(Step(len(removed) / max(1, total_free), context.price(removed).params, usage,
                            frozenset(removed)))
        if progress:
            progress(history[-1])
        over = usage.over(budget)
        if not over:
            return removed, history
        if settings.allocation == "paper":
            chunk = _paper_cut(context, mode, groups, scores, removed, usage, over, config, settings.step)
            cut = (chunk, estimate(removed | chunk)) if chunk else None
        else:
            cut = _cost_cut(context, groups, scores, removed, usage, over, budget, estimate, config, settings.step)
        if cut is None:
            raise _impossible(context, usage, over, removed, estimate, config)
        chunk, usage = cut
        removed |= chunk


def _cost_cut(context, groups, scores, removed, usage, over, budget, estimate, config: PruneConfig, step: float):
    """``(units, usage after)`` of the cost allocation's next cut, or None when nothing can shrink:
    the best cut of the binding resource (the one most over, relatively); the arena peak's groups first."""
    binding = max(over, key=lambda n: (usage.amount(n) - over[n].limit) / over[n].limit)
    cut = _best_cut(context, groups, scores, removed, usage, binding, estimate, config, step, at_peak=True) or \
        _best_cut(context, groups, scores, removed, usage, binding, estimate, config, step, at_peak=False)
    if cut is None:
        return None
    _, units, after = cut  # with round_to > 1 the whole cut, which keeps widths multiples of round_to
    return _smallest_fitting(cut, removed, budget, estimate) if config.round_to == 1 else (set(units.tolist()), after)


def _paper_cut(context, mode, groups, scores, removed, usage, over, config: PruneConfig, step: float) -> set:
    """The paper's allocation: ``step`` of each group the mode selects among those that can shrink
    (MA with RAM over: the groups alive at the arena peak first; then the selection; then all)."""
    min_filters, round_to, min_keep = config.min_filters, config.round_to, config.min_keep
    deps = context.deps
    free = [g for g in groups if choose_units(deps, g, scores[g.id], round_to, min_filters, removed, round_to,
                                              min_keep=min_keep).size]  # round_to: the least cut that keeps a multiple
    choices = []
    if mode == "MA" and "ram" in over and usage.arena.peak_tensors:
        choices.append([g for g in free if set(usage.arena.peak_tensors) & set(g.tensors)])
    if free:
        selections = select_groups(deps, context.price(removed), mode, config, groups=free,
                                   removed=frozenset(removed))
        choices.append([sel.group for sel in selections if sel.selected])
    choices.append(free)
    for chosen in choices:
        dropped = set()
        for group in chosen:
            width = _remaining(group, removed)
            count = max(1, width - max(round_to, (math.floor(width * (1 - step)) // round_to) * round_to))
            dropped |= set(choose_units(deps, group, scores[group.id], count, min_filters, removed | dropped,
                                        round_to, min_keep=min_keep).tolist())
        if dropped:
            return dropped
    return set()


def _normalized(scores: np.ndarray, group) -> np.ndarray:
    """Importance scores on a common scale across groups: 1 is the group's mean free unit."""
    free = scores[~group.pinned]
    mean = float(np.mean(free)) if free.size else 0.0
    return scores / mean if mean > 0 else np.ones_like(scores, dtype=float)


def _best_cut(context, groups, scores, removed, usage, binding, estimate, config: PruneConfig, step: float,
              at_peak: bool):
    """``(group, units, usage after)`` of the cut saving most ``binding`` per importance, or None;
    ``at_peak``: for RAM, only groups with a tensor alive at the arena peak. Where several ops tie
    for the arena peak no single cut lowers it: the cut freeing most activation bytes per
    importance goes first (the tie breaks a few steps later)."""
    peak = set(usage.arena.peak_tensors) if binding == "ram" and at_peak else set()
    if at_peak and not peak:
        return None
    min_filters, round_to, min_keep = config.min_filters, config.round_to, config.min_keep
    best, tied, activations = (None, 0.0), (None, 0.0), None
    for group in groups:
        if peak and not peak & set(group.tensors):
            continue
        width = _remaining(group, removed)
        count = max(1, int(math.ceil(step * width)))
        if round_to > 1:  # kept widths stay multiples of round_to: the cut rounds up to the next one
            count = width - max(round_to, (width - count) // round_to * round_to)
        units = choose_units(context.deps, group, scores[group.id], count, min_filters, removed, round_to,
                             min_keep=min_keep)
        if not units.size:
            continue
        after = estimate(removed | set(units.tolist()))
        cost = float(scores[group.id][np.isin(group.units, units)].sum()) + 1e-9
        saved = usage.amount(binding) - after.amount(binding)
        if saved > 0 and saved / cost > best[1]:
            best = ((group, units, after), saved / cost)
        elif saved == 0 and binding == "ram" and best[0] is None:
            activations = activations or context.price(removed).act_bytes_f32
            freed = activations - context.price(removed | set(units.tolist())).act_bytes_f32
            if freed > 0 and freed / cost > tied[1]:
                tied = ((group, units, after), freed / cost)
    return best[0] or tied[0]


def _remaining(group, removed: set) -> int:
    return len(group.units) - int(np.isin(group.units, list(removed)).sum()) if removed else len(group.units)


def _smallest_fitting(cut, removed: set, budget, estimate) -> tuple[set, Usage]:
    """The shortest prefix (least important first) of the cut's units that fits, else all of it."""
    group, units, after = cut
    if after.over(budget) or len(units) == 1:
        return set(units.tolist()), after
    low, high = 0, len(units)  # prefix lengths: `high` fits
    fits = {high: after}
    while high - low > 1:
        middle = (low + high) // 2
        usage = estimate(removed | set(units[:middle].tolist()))
        if usage.over(budget):
            low = middle
        else:
            high, fits[middle] = middle, usage
    return set(units[:high].tolist()), fits[high]


def _impossible(context: PruneContext, usage: Usage, over: dict, removed: set, estimate,
                config: PruneConfig) -> BudgetError:
    min_filters, round_to, min_keep = config.min_filters, config.round_to, config.min_keep
    bound = _ram_bound(context.deps, usage, removed) if "ram" in over and usage.arena.peak_tensors else ""
    rows = context.price(removed).layers
    for name, attr, unit in (("flash", "weight_bytes_int8", "B int8 weights"), ("macs", "macs", "MACs")):
        if name in over:
            top = sorted(rows, key=lambda r: getattr(r, attr), reverse=True)[:3]
            bound += (f" {'Flash' if name == 'flash' else 'MACs'} left are mostly in "
                      + ", ".join(f"{r.name!r} ({getattr(r, attr):,} {unit})" for r in top) + ".")
            if name == "flash":
                weights = sum(r.weight_bytes_int8 for r in rows)
                bound += f" Weights are {weights:,} B of the flash; the rest is the flatbuffer's tensor and op tables."
    floor = estimate(_at_floor(context, removed, min_filters, round_to, min_keep))
    lowest = estimate(_at_floor(context, removed, min_filters, 1, 0.0))
    reach = lambda u: f"arena {u.arena.bytes:,} B, flash {u.flash:,} B, MACs {u.macs:,}"  # noqa: E731
    hint = (f" With min_keep=0 (layers down to min_filters={min_filters}) it could reach {reach(lowest)}."
            if min_keep > 0 else "")
    return BudgetError(
        f"The budget cannot be met with every layer kept at least min_keep={min_keep:g} of its width "
        f"(rounded up to round_to={round_to}, at least min_filters={min_filters}): {describe_over(over)}. Smallest reachable "
        f"at that floor: {reach(_least(usage, floor))}.{hint}{bound} Raise the budget, lower min_keep, or change the "
        "architecture (e.g. a smaller input or an earlier stride)."
    )


def _least(a: Usage, b: Usage) -> Usage:
    return Usage(min(a.arena, b.arena, key=lambda f: f.bytes), min(a.flash, b.flash), min(a.macs, b.macs), a.margin)


def _at_floor(context: PruneContext, removed: set, min_filters: int, round_to: int, min_keep: float) -> set:
    """``removed`` plus every further unit the floor allows: each group as narrow as it may be."""
    result = set(removed)
    for group in context.deps.groups:
        if group.prunable:
            result |= set(choose_units(context.deps, group, np.zeros(len(group.units)), len(group.units),
                                       min_filters, result, round_to, min_keep=min_keep).tolist())
    return result


def _ram_bound(deps, usage: Usage, removed: set) -> str:
    """Which tensors hold the arena peak, that pruning cannot shrink any further."""
    shapes, tensors = deps.pruned_shapes(removed), deps.graph.tensors

    def label(key):
        producer = tensors[key].producer
        kind = "model input" if deps.graph.node(producer).is_input else "output of"
        return f"{kind} {producer!r} {shapes.get(key, tensors[key].shape)}"

    names = ", ".join(label(k) for k in usage.arena.peak_tensors)
    return (f" The arena peak is at {usage.arena.peak!r}, where these tensors are alive and cannot shrink: "
            f"{names}; the rest is TFLM's persistent data (interpreter, tensor and op structs).")
