"""Budget-targeted pruning: the least complexity-driven pruning that fits RAM, flash and MACs.

The search prunes in small steps from the unpruned model and stops at the first state that fits
every budget, so one step less would not have fit. Each step chooses groups the way the mode
does (`selection`); in MA mode with a RAM budget it prunes the groups whose activations are
alive at the predicted arena peak first, since the peak alone sets the arena.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import BudgetError
from .importance import unit_scores
from .pruner import PruneContext, choose_units
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
    from .arena import estimate_deployment

    def estimate(removed: set) -> Usage:
        arena, flash = estimate_deployment(context.graph, context.deps.pruned_shapes(removed), assume_trained=True)
        return Usage(arena.bytes, flash, context.price(removed).macs, arena.peak_tensors, arena.peak_layer)

    return estimate


def as_trained(model):
    """``model`` (a copy of the user's) with each all-zero Dense bias set to 1e-3, as training leaves it."""
    for layer in model.layers:
        bias = getattr(layer, "bias", None) if type(layer).__name__ == "Dense" else None
        if bias is not None and not np.any(bias.numpy()):
            bias.assign(np.full(tuple(bias.shape), 1e-3, "float32"))
    return model


def tflm_verifier(context: PruneContext, representative_data=None, seed: int = 0) -> Callable[[set], Usage]:
    """``removed -> Usage`` measured for real: rebuild, convert to int8 with tflm_export and find
    the minimal arena on the TFLM runtime; flash is the flatbuffer size. Without
    ``representative_data``, 32 uniform [0, 1) samples calibrate (sizes do not depend on values,
    but for an all-zero Dense bias, which the converter drops: it is measured as once trained)."""
    from tflm_export.convert import convert
    from tflm_export.runtime import find_min_arena

    from .rebuild import rebuild
    from .tflm_planner import predict_arena_from_tflite

    if representative_data is None:
        shape = (32,) + tuple(context.graph.tensors[context.graph.inputs[0]].shape)
        representative_data = np.random.default_rng(seed).uniform(0, 1, shape).astype("float32")

    def measure(removed: set) -> Usage:
        tflite = convert(as_trained(rebuild(context.model, context.deps, removed)), representative_data)
        arena = find_min_arena(tflite, predict_arena_from_tflite(tflite).total_bytes).arena
        return Usage(arena, len(tflite), context.price(removed).macs)

    return measure


def over_budget(usage: Usage, budget) -> dict:
    """``{resource: (used, limit)}`` for every resource of ``budget`` that ``usage`` exceeds."""
    limits = {name: getattr(budget, name, None) for name in RESOURCES}
    return {n: (getattr(usage, n), lim) for n, lim in limits.items() if lim is not None and getattr(usage, n) > lim}


def search(context: PruneContext, mode: str, budget, estimate: Callable[[set], Usage], *, step: float = 0.1,
           importance="l1", rule="mean", threshold=1.0, coverage=0.8, min_filters=1, round_to=1, seed=0,
           removed: set | None = None, progress=print) -> tuple[set, list]:
    """Grow the removed-unit set from ``removed`` until ``estimate(removed)`` fits ``budget``.

    Returns the removed units and the steps taken. Raises `BudgetError` with the smallest usage
    reachable when no further pruning is possible.
    """
    mode = check_mode(mode)
    if not 0 < step < 1:
        raise BudgetError(f"`step` is the fraction of a group's channels removed per search step and must be in "
                          f"(0, 1). Received: step={step!r}.")
    rng = np.random.default_rng(seed)
    deps = context.deps
    groups = [g for g in deps.groups if g.prunable]
    scores = {g.id: unit_scores(deps, g, importance, rng) for g in groups}
    total_free = sum(int((~g.pinned).sum()) for g in groups)
    removed, history = set(removed or ()), []
    while True:
        usage = estimate(removed)
        history.append(Step(len(removed) / max(1, total_free), context.price(removed).params, usage,
                            frozenset(removed)))
        if progress:
            progress(history[-1].line())
        over = over_budget(usage, budget)
        if not over:
            return removed, history
        candidates = [g for g in groups if _shrinkable(deps, g, removed, min_filters)]
        for chosen in _choices(context, mode, candidates, removed, usage, over, rule, threshold, coverage):
            dropped = _step(deps, chosen, scores, removed, step, min_filters, round_to)
            if dropped:
                removed |= dropped
                break
        else:
            raise _impossible(context, usage, over, removed)


def _choices(context, mode, candidates, removed, usage, over, rule, threshold, coverage):
    """Group sets to try, most targeted first: the arena peak (MA + RAM), the mode's selection, all."""
    if mode == "MA" and "ram" in over and usage.peak_tensors:
        peak = set(usage.peak_tensors)
        yield [g for g in candidates if peak & set(g.tensors)]
    report = context.price(removed)
    selections = select_groups(context.deps, report, mode, rule, threshold, coverage, groups=candidates,
                               removed=frozenset(removed)) if candidates else []
    yield [s.group for s in selections if s.selected]
    yield candidates


def _remaining(group, removed: set) -> int:
    return len(group.units) - int(np.isin(group.units, list(removed)).sum()) if removed else len(group.units)


def _shrinkable(deps, group, removed: set, min_filters: int) -> bool:
    return len(choose_units(deps, group, np.zeros(len(group.units)), 1, min_filters, removed)) > 0


def _step(deps, groups, scores, removed: set, step: float, min_filters: int, round_to: int) -> set:
    dropped = set()
    for group in groups:
        width = _remaining(group, removed)
        target = max(round_to, (math.floor(width * (1 - step)) // round_to) * round_to)
        count = max(1, width - target) if width > round_to else 0
        choose = lambda n: choose_units(deps, group, scores[group.id], n, min_filters, removed | dropped, round_to)
        chosen = choose(count)
        while round_to > 1 and not chosen.size and 0 < count < width - 1:  # rounding gave it back: ask more
            count += 1
            chosen = choose(count)
        dropped |= set(chosen.tolist())
    return dropped


def _impossible(context: PruneContext, usage: Usage, over: dict, removed: set) -> BudgetError:
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
    return BudgetError(
        f"The budget cannot be met even with every prunable channel group pruned as far as allowed "
        f"(min_filters per layer): {details}. Smallest reachable: arena {usage.ram:,} B, flash {usage.flash:,} B, "
        f"MACs {usage.macs:,}.{bound} Raise the budget, lower min_filters, or change the architecture "
        "(e.g. a smaller input or an earlier stride)."
    )


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


def fit_budget(context: PruneContext, mode: str, budget, *, verify=None, progress=print, **options):
    """The least pruning that fits ``budget``: ``(plan, removed)``.

    ``verify(removed) -> Usage`` measures a candidate for real (e.g. on the TFLM runtime); while
    the measurement exceeds a limit of ``budget``, the search goes on against that limit lowered
    by the measured excess over the prediction (always lower than the last search's limit).
    """
    target = Limits.of(budget)
    limits, removed = target, set()
    estimate = usage_estimator(context)
    while True:
        removed, history = search(context, mode, limits, estimate, removed=removed, progress=progress, **options)
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
    selections = select_groups(context.deps, context.report, mode, options.get("rule", "mean"),
                               options.get("threshold", 1.0), options.get("coverage", 0.8))
    fraction = history[-1].removed_fraction
    plan = context.describe(mode, fraction, removed, selections, options.get("importance", "l1"),
                            options.get("rule", "mean"), reason=f"pruned to fit {target}")
    return plan, removed
