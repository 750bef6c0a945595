"""The paper's complexity-driven layer choice: PA (parameters), FA (FLOPs), MA (activation memory).

A group's complexity in a mode is the sum, over the layers whose input or output channels it
holds, of their parameters (PA) or MACs (FA); for MA, the bytes of the activations it holds.
Its *share* is that cost over the model total. Rules:
- ``"mean"`` (default): groups whose share is at least ``threshold`` x the mean share of the
  prunable groups (the paper prunes the layers that contribute above average);
- ``"coverage"``: the highest-share groups until their costs add up to ``coverage`` of the sum;
- ``"all"``: every prunable group (uniform pruning).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_cprune.analysis.complexity import ComplexityReport
from keras_cprune.config import PruneConfig, check_mode
from keras_cprune.graph.dependency import Dependencies, Group
from keras_cprune.analysis.memory import tensor_elements



@dataclass(frozen=True)
class Selection:
    group: Group
    share: float
    selected: bool
    reason: str


def group_share(deps: Dependencies, report: ComplexityReport, group: Group, mode: str,
                removed: frozenset = frozenset()) -> float:
    """The fraction of the model's complexity in ``mode`` that ``group`` holds; ``report`` and
    ``removed`` describe the model after removing those units (nothing removed by default)."""
    if mode == "MA":
        held, gone = 0.0, deps.removed_mask(removed)
        for key in group.tensors:
            units = deps.units[key]
            kept = units[~gone[units]]
            if len(kept):
                shape = deps.graph.tensors[key].shape[:-1] + (len(kept),)
                held += 4 * tensor_elements(shape) * np.isin(kept, group.units).mean()
        return held / max(1, report.act_bytes_f32)
    attr, total = ("params", report.params) if mode == "PA" else ("macs", report.macs)
    rows = {row.name: row for row in report.layers}
    return sum(getattr(rows[n], attr) for n in group.layers if n in rows) / max(1, total)


def select_groups(deps: Dependencies, report: ComplexityReport, mode: str, config: PruneConfig,
                  groups: list | None = None, removed: frozenset = frozenset()) -> list[Selection]:
    """Rank ``groups`` (default: the prunable ones) by their share in ``mode`` and mark those
    ``config.rule`` selects (with its ``threshold`` or ``coverage``); ``report``/``removed`` give
    the current state when already pruned."""
    mode = check_mode(mode)
    rule, threshold, coverage = config.rule, config.threshold, config.coverage
    groups = [g for g in deps.groups if g.prunable] if groups is None else groups
    shares = np.array([group_share(deps, report, g, mode, removed) for g in groups])
    order = np.argsort(-shares, kind="stable")
    if rule == "mean":
        cut = threshold * shares.mean() if len(shares) else 0.0
        chosen = set(np.flatnonzero(shares >= cut).tolist())
        why = f"{mode} share >= {threshold:g} x mean share ({100 * cut:.2f}%)"
    elif rule == "coverage":
        cumulative = np.cumsum(shares[order]) / max(shares.sum(), 1e-12)
        chosen = set(order[: int(np.searchsorted(cumulative, coverage) + 1)].tolist())
        why = f"among the top {mode} shares covering {100 * coverage:.0f}% of the total"
    else:
        chosen, why = set(range(len(groups))), "uniform: every prunable group"
    return [Selection(groups[i], float(shares[i]), i in chosen, why if i in chosen else "below the cut")
            for i in order.tolist()]

