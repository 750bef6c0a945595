"""Budget-targeted pruning: the least complexity-driven pruning that fits RAM, flash and MACs.

The search prunes in small steps from the unpruned model and stops at the first state that fits
every budget, so one step less would not have fit. Each step chooses groups the way the mode
does (`selection`); in MA mode with a RAM budget it prunes the groups whose activations are
alive at the predicted arena peak first, since the peak alone sets the arena.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import BudgetError
from .importance import unit_scores
from .arena import estimate_deployment
from .planning import PruneContext, choose_units
from .rebuild import as_trained, rebuild
from .selection import check_mode, select_groups


@dataclass(frozen=True)
class Usage:
    """Predicted deployment resources of one pruning state (bytes, MACs)."""

    ram: int
    flash: int
    macs: int
    peak_tensors: tuple = ()  # graph tensor keys alive where the RAM peak happens
    peak_op: str = ""


@dataclass(frozen=True)
class Step:
    removed_fraction: float
    params: int
    usage: Usage
    removed: frozenset = frozenset()

    def line(self) -> str:
        u = self.usage
        return (f"pruned {100 * self.removed_fraction:5.1f}% of channels | params {self.params:>10,} | "
                f"MACs {u.macs:>13,} | arena {u.ram:>9,} B | flash {u.flash:>9,} B")


RESOURCES = ("ram", "flash", "macs")


def usage_estimator(context: PruneContext) -> Callable[[set], Usage]:
    """``removed -> Usage`` from the Keras graph alone: exact TFLM arena, estimated flash, MACs, of
    the pruned model as it will be deployed, trained (see `estimate_arena`'s ``assume_trained``)."""
    def estimate(removed: set) -> Usage:
        arena, flash = estimate_deployment(context.graph, context.deps.pruned_shapes(removed), assume_trained=True,
                                           schedule=context.schedule)
        return Usage(arena.bytes, flash, context.price(removed).macs, arena.peak_tensors, arena.peak_layer)

    return estimate


def tflm_verifier(context: PruneContext, representative_data=None, seed: int = 0) -> Callable[[set], Usage]:
    """``removed -> Usage`` measured for real: rebuild, convert to int8 with tflm_export and find
    the minimal arena on the TFLM runtime; flash is the flatbuffer size. Without
    ``representative_data``, 32 uniform [0, 1) samples calibrate (sizes do not depend on values,
    but for an all-zero Dense bias, which the converter drops: it is measured as once trained)."""
    from tflm_export.convert import convert
    from tflm_export.planner import predict_arena_from_tflite
    from tflm_export.runtime import find_min_arena

    if representative_data is None:
        shape = (32,) + tuple(context.graph.tensors[context.graph.inputs[0]].shape)
        representative_data = np.random.default_rng(seed).uniform(0, 1, shape).astype("float32")

    def measure(removed: set) -> Usage:
        tflite = convert(as_trained(rebuild(context.model, context.deps, removed)), representative_data)
        arena = find_min_arena(tflite, predict_arena_from_tflite(tflite).total_bytes).arena
        return Usage(arena, len(tflite), context.price(removed).macs)

    return measure


def resolve_verifier(context: PruneContext, verify, representative_data=None) -> tuple:
    """``(measure or None, measure every step?)`` for `prune`'s ``verify`` argument: "auto" measures
    the result when the ``tflite-micro`` runtime is installed, True requires it, False never."""
    if verify not in ("auto", True, False, "every_step"):
        raise BudgetError(f'`verify` must be "auto", True, False or "every_step". Received: verify={verify!r}.')
    if verify is False:
        return None, False
    try:
        import tflite_micro  # noqa: F401
    except ImportError:
        if verify == "auto":
            return None, False
        raise BudgetError("verify=True measures the result on the TFLite Micro runtime, which is not installed: "
                          "`pip install tflite-micro`, or pass verify=False to trust the prediction.") from None
    return tflm_verifier(context, representative_data), verify == "every_step"


def over_budget(usage: Usage, budget) -> dict:
    """``{resource: (used, limit)}`` for every resource of ``budget`` that ``usage`` exceeds; the
    arena counts in the 16-byte steps in which TFLM's is measured."""
    limits = {name: getattr(budget, name, None) for name in RESOURCES}
    used = {"ram": -(-usage.ram // 16) * 16, "flash": usage.flash, "macs": usage.macs}
    return {n: (getattr(usage, n), lim) for n, lim in limits.items() if lim is not None and used[n] > lim}


def search(context: PruneContext, mode: str, budget, estimate: Callable[[set], Usage], *, step: float = 0.1,
           importance="l1", rule="mean", threshold=1.0, coverage=0.8, min_filters=1, round_to=1, seed=0,
           min_keep: float = 0.25, allocation: str = "cost", removed: set | None = None,
           progress=None) -> tuple[set, list]:
    """Grow the removed-unit set from ``removed`` until ``estimate(removed)`` fits ``budget``.

    ``allocation="cost"``: each step cuts the group whose next ``step`` of channels (lowest
    ``importance`` first) saves the most of the binding resource (the one most over, relatively)
    per unit of importance removed; for RAM only groups alive at the arena peak can save; the last
    cut is the smallest that fits. ``allocation="paper"``: each step cuts ``step`` of every group
    the ``mode``'s rule selects (in MA with RAM over, the groups alive at the arena peak first).
    No producer goes below ``min_keep`` of its width (rounded up to ``round_to``) nor ``min_filters``.
    ``progress(step)`` is called with each `Step`. Returns the removed units and the steps taken;
    `BudgetError` with the smallest usage reachable when no further pruning is possible.
    """
    check_mode(mode)
    if allocation not in ("cost", "paper"):
        raise BudgetError(f'`allocation` must be "cost" (resource saved per importance) or "paper" (the mode\'s '
                          f'selection rule). Received: allocation={allocation!r}.')
    if not 0 < step < 1:
        raise BudgetError(f"`step` is the fraction of a group's channels removed per search step and must be in "
                          f"(0, 1). Received: step={step!r}.")
    rng = np.random.default_rng(seed)
    deps = context.deps
    groups = [g for g in deps.groups if g.prunable]
    scores = {g.id: _normalized(unit_scores(deps, g, importance, rng), g) for g in groups}
    total_free = sum(int((~g.pinned).sum()) for g in groups)
    removed, history = set(removed or ()), []
    usage = estimate(removed)
    while True:
        history.append(Step(len(removed) / max(1, total_free), context.price(removed).params, usage,
                            frozenset(removed)))
        if progress:
            progress(history[-1])
        over = over_budget(usage, budget)
        if not over:
            return removed, history
        if allocation == "paper":
            chunk = _paper_cut(context, mode, groups, scores, removed, usage, over, (step, min_filters, round_to,
                                                                                      min_keep), rule, threshold,
                               coverage)
            if not chunk:
                raise _impossible(context, usage, over, removed, estimate, min_filters, round_to, min_keep)
            removed |= chunk
            usage = estimate(removed)
            continue
        binding = max(over, key=lambda n: (over[n][0] - over[n][1]) / over[n][1])
        options = (step, min_filters, round_to, min_keep)
        cut = _best_cut(context, groups, scores, removed, usage, binding, estimate, *options, at_peak=True) or \
            _best_cut(context, groups, scores, removed, usage, binding, estimate, *options, at_peak=False)
        if cut is None:
            raise _impossible(context, usage, over, removed, estimate, min_filters, round_to, min_keep)
        chunk, after = _smallest_fitting(cut, removed, budget, estimate) if round_to == 1 else \
            (set(cut[1].tolist()), cut[2])
        removed |= chunk
        usage = after


def _paper_cut(context, mode, groups, scores, removed, usage, over, options, rule, threshold, coverage) -> set:
    """The paper's allocation: ``step`` of each group the mode selects among those that can shrink
    (MA with RAM over: the groups alive at the arena peak first; then the selection; then all)."""
    step, min_filters, round_to, min_keep = options
    deps = context.deps
    free = [g for g in groups if choose_units(deps, g, scores[g.id], 1, min_filters, removed, round_to,
                                              min_keep=min_keep).size]
    choices = []
    if mode == "MA" and "ram" in over and usage.peak_tensors:
        choices.append([g for g in free if set(usage.peak_tensors) & set(g.tensors)])
    if free:
        selections = select_groups(deps, context.price(removed), mode, rule, threshold, coverage, groups=free,
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


def _best_cut(context, groups, scores, removed, usage, binding, estimate, step, min_filters, round_to, min_keep,
              at_peak: bool):
    """``(group, units, usage after)`` of the cut saving most ``binding`` per importance, or None;
    ``at_peak``: for RAM, only groups with a tensor alive at the arena peak. Where several ops tie
    for the arena peak no single cut lowers it: the cut freeing most activation bytes per
    importance goes first (the tie breaks a few steps later)."""
    peak = set(usage.peak_tensors) if binding == "ram" and at_peak else set()
    if at_peak and not peak:
        return None
    best, tied, activations = (None, 0.0), (None, 0.0), None
    for group in groups:
        if peak and not peak & set(group.tensors):
            continue
        width = _remaining(group, removed)
        count = max(1, int(math.ceil(step * width)))
        units = choose_units(context.deps, group, scores[group.id], count, min_filters, removed, round_to,
                             min_keep=min_keep)
        if not units.size:
            continue
        after = estimate(removed | set(units.tolist()))
        cost = float(scores[group.id][np.isin(group.units, units)].sum()) + 1e-9
        saved = getattr(usage, binding) - getattr(after, binding)
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
    if over_budget(after, budget) or len(units) == 1:
        return set(units.tolist()), after
    low, high = 0, len(units)  # prefix lengths: `high` fits
    fits = {high: after}
    while high - low > 1:
        middle = (low + high) // 2
        usage = estimate(removed | set(units[:middle].tolist()))
        if over_budget(usage, budget):
            low = middle
        else:
            high, fits[middle] = middle, usage
    return set(units[:high].tolist()), fits[high]


def _impossible(context: PruneContext, usage: Usage, over: dict, removed: set, estimate, min_filters: int,
                round_to: int, min_keep: float) -> BudgetError:
    details = ", ".join(f"{name} {used:,} > {limit:,}" for name, (used, limit) in over.items())
    bound = _ram_bound(context.deps, usage, removed) if "ram" in over and usage.peak_tensors else ""
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
    reach = lambda u: f"arena {u.ram:,} B, flash {u.flash:,} B, MACs {u.macs:,}"  # noqa: E731
    hint = (f" With min_keep=0 (layers down to min_filters={min_filters}) it could reach {reach(lowest)}."
            if min_keep > 0 else "")
    return BudgetError(
        f"The budget cannot be met with every layer kept at least min_keep={min_keep:g} of its width "
        f"(rounded up to round_to={round_to}, at least min_filters={min_filters}): {details}. Smallest reachable "
        f"at that floor: {reach(_least(usage, floor))}.{hint}{bound} Raise the budget, lower min_keep, or change the "
        "architecture (e.g. a smaller input or an earlier stride)."
    )


def _least(a: Usage, b: Usage) -> Usage:
    return Usage(min(a.ram, b.ram), min(a.flash, b.flash), min(a.macs, b.macs))


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

    names = ", ".join(label(k) for k in usage.peak_tensors)
    return (f" The arena peak is at {usage.peak_op!r}, where these tensors are alive and cannot shrink: "
            f"{names}; the rest is TFLM's persistent data (interpreter, tensor and op structs).")


@dataclass(frozen=True)
class Limits:
    """The resource limits of any budget object (``ram``/``flash`` bytes, ``macs``)."""

    ram: int | None = None
    flash: int | None = None
    macs: int | None = None

    def __str__(self) -> str:
        units = {"ram": " B arena", "flash": " B flash", "macs": " MACs"}
        return ", ".join(f"{n} <= {v:,}{units[n]}" for n in RESOURCES if (v := getattr(self, n)) is not None)

    @classmethod
    def of(cls, budget) -> "Limits":
        limits = cls(*(getattr(budget, name, None) for name in RESOURCES))
        if all(v is None for v in (limits.ram, limits.flash, limits.macs)):
            raise BudgetError(f"The budget sets no limit; give ram=, flash= and/or macs=. Received: budget={budget!r}.")
        for name in RESOURCES:
            value = getattr(limits, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise BudgetError(f"Budget {name}= must be a positive number of bytes (MACs for macs=). "
                                  f"Received: {name}={value!r}.")
        return limits


class SearchProgress:
    """One updating line per budget search (as ``Model.fit``'s progress bar): how far (%) the
    binding resource has come from the unpruned model to the budget, with the step's arena,
    flash and MACs. ``verbose``: 0 silent, 1 the line updated in place, 2 only its final state,
    "auto" 1 on a terminal and 2 otherwise."""

    def __init__(self, budget, verbose="auto"):
        if verbose == "auto":
            verbose = 1 if sys.stdout.isatty() else 2
        self.budget, self.verbose, self.start, self.steps, self.width = budget, verbose, None, 0, 0

    def __call__(self, step: Step) -> None:
        self.start, self.steps = self.start or step.usage, self.steps + 1
        if self.verbose == 1:
            self._show(self.line(step.usage), end="")

    def percent(self, usage: Usage) -> int:
        done = [1.0]
        for name in RESOURCES:
            limit = getattr(self.budget, name, None)
            start, used = getattr(self.start, name), getattr(usage, name)
            if limit is not None and start > limit:
                done.append(max(0.0, min(1.0, (start - used) / (start - limit))))
        return int(100 * min(done))

    def line(self, usage: Usage, measured: Usage | None = None) -> str:
        arena, flash = f"arena {usage.ram:,} B", f"flash {usage.flash:,} B"
        if measured is not None:
            arena = f"arena {measured.ram:,} B measured ({usage.ram:,} predicted)"
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


def fit_budget(context: PruneContext, mode: str, budget, *, verify=None, progress=None, verbose=0, **options):
    """The least pruning that fits ``budget``: ``(plan, removed)``.

    ``verify(removed) -> Usage`` measures a candidate for real (e.g. on the TFLM runtime); while
    the measurement exceeds a limit of ``budget``, the search goes on against that limit lowered
    by the measured excess over the prediction (always lower than the last search's limit). The
    plan's ``after`` holds the predicted and (with ``verify``) measured arena and flash.
    """
    target = Limits.of(budget)
    limits, removed = target, set()
    estimate = options.pop("estimate", None) or usage_estimator(context)
    bar = SearchProgress(target, verbose)
    report = (lambda step: (bar(step), progress(step.line()))) if progress else bar
    while True:
        removed, history = search(context, mode, limits, estimate, removed=removed, progress=report, **options)
        measured = verify(removed) if verify else None
        over = over_budget(measured, target) if measured else {}
        if not over:
            break
        predicted = history[-1].usage
        tighter = {name: min(getattr(limits, name) - 16, limit - (getattr(measured, name) - getattr(predicted, name)))
                   for name, (_, limit) in over.items()}
        if progress:
            progress(f"measured over budget ({', '.join(f'{n} {u:,} > {l:,}' for n, (u, l) in over.items())}); "
                     f"searching again with {tighter}")
        limits = Limits(**{**limits.__dict__, **tighter})
    bar.close(history[-1].usage, measured)
    selections = select_groups(context.deps, context.report, mode, options.get("rule", "mean"),
                               options.get("threshold", 1.0), options.get("coverage", 0.8))
    fraction = history[-1].removed_fraction
    plan = context.describe(mode, fraction, removed, selections, options.get("importance", "l1"),
                            options.get("rule", "mean"), reason=f"pruned to fit {target}")
    plan.after.update(predicted_flash_bytes=history[-1].usage.flash)
    if measured is not None:
        plan.after.update(measured_arena_bytes=measured.ram, measured_flash_bytes=measured.flash)
    return plan, removed
