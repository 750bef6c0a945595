"""Planning a pruning: a model read once (`PruneContext`), which units each group loses, what it costs.

Shared by ratio pruning (`api.prune`), budget searches (`budget.fit`), training-time pruning and the
trade-off table; it rebuilds nothing. The options come as one `config.PruneConfig`.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from tflm_export.budget import parse_margin
from tflm_export.micro.targets import Target, resolve_target

from keras_cprune.deploy.arena import estimate_deployment
from keras_cprune.analysis.complexity import ComplexityReport, report_from_graph
from keras_cprune.config import PruneConfig, check_mode, resolve_config
from keras_cprune.graph.dependency import Dependencies, Group, build_dependencies
from keras_cprune.errors import PruningError
from keras_cprune.graph.reader import Graph, read_graph, with_input_shape
from keras_cprune.pruning.importance import unit_scores
from keras_cprune.pruning.plan import GroupPlan, PlanTotals, PruningPlan
from keras_cprune.deploy.converter_order import schedule_of
from keras_cprune.pruning.selection import select_groups


@dataclass
class PruneContext:
    """A model read once (graph, channel groups, complexity) for repeated planning."""

    model: object
    graph: Graph
    deps: Dependencies
    report: ComplexityReport
    per_channel_dense: bool = True  # the export predicted and measured, as `tflm_export.convert`'s
    target: Target | None = None  # the Cortex-M TFLM build the arena is predicted for; None: the PyPI runtime
    margin: int = 0  # bytes reserved above the arena: a budget's ram is judged on arena + margin
    _schedule: object = None

    @classmethod
    def of(cls, model, input_shape=None, per_channel_dense: bool = True, target=None, margin=0) -> "PruneContext":
        model = with_input_shape(model, input_shape)
        graph = read_graph(model)
        deps = build_dependencies(graph)
        if not any(g.prunable for g in deps.groups):
            raise PruningError(f"Nothing in model {graph.model_name!r} can be pruned: {deps.pin_summary()}. "
                               "Every Conv/Dense layer's output channels are pinned (by a model output or a layer "
                               "they feed); teach the engine a custom layer with keras_cprune.register_layer, replace "
                               "Lambda layers with built-in channel-wise ones, or prune a model with Conv/Dense "
                               "layers before its output layer.")
        target = None if target is None else resolve_target(target)
        return cls(model, graph, deps, report_from_graph(graph), per_channel_dense,
                   None if target is None or target.core == "host" else target, parse_margin(margin))

    @property
    def schedule(self):
        """The TFLite converter's op order of this model (`converter_order.Schedule`), read once."""
        if self._schedule is None:
            self._schedule = schedule_of(self.model, self.graph, self.per_channel_dense)
        return self._schedule

    def price(self, removed: set) -> ComplexityReport:
        """Complexity of the model with the ``removed`` units gone, without rebuilding it."""
        return report_from_graph(self.graph, self.deps.pruned_shapes(removed))

    def plan(self, mode: str, ratio: float, config: PruneConfig | None = None,
             **options) -> tuple[PruningPlan, set]:
        """`choose`, then price the result: ``(plan, removed units)``. The plan's predicted arena
        converts the unpruned model once (`schedule`); `choose` alone converts nothing."""
        config = resolve_config(config, **options)
        removed, selections = self.choose(mode, ratio, config)
        return self.describe(mode, ratio, removed, selections, config.importance, config.rule), removed

    def choose(self, mode: str, ratio: float, config: PruneConfig | None = None, **options) -> tuple[set, list]:
        """Choose the groups by ``mode`` and the units to remove in each: ``(removed units,
        selections)``. ``options`` (fields of `PruneConfig`) override those of ``config``."""
        _check_ratio(ratio)
        config = resolve_config(config, **options)
        rng = np.random.default_rng(config.seed)
        removed = set()
        selections = select_groups(self.deps, self.report, mode, config)
        for sel in selections:
            if sel.selected:
                group = sel.group
                scores = unit_scores(self.deps, group, config.importance, rng)
                keep = kept_width(len(group.units), int((~group.pinned).sum()), ratio, config.round_to)
                count = len(group.units) - keep
                removed |= set(choose_units(self.deps, group, scores, count, config.min_filters,
                                            round_to=config.round_to, min_keep=config.min_keep).tolist())
        return removed, selections

    def describe(self, mode: str, ratio: float, removed: set, selections, importance, rule: str,
                 reason: str | None = None, measured=None) -> PruningPlan:
        """The `PruningPlan` of removing ``removed``; ``reason`` overrides the selections' own;
        ``measured``: the ``(ArenaFigure, flash bytes)`` the TFLM runtime measured of the result."""
        mask = self.deps.removed_mask(removed)
        groups = tuple(self._group_plan(sel, mask, reason) for sel in selections)
        name = importance if isinstance(importance, str) else getattr(importance, "__name__", "callable")
        return PruningPlan(self.graph.model_name, check_mode(mode), float(ratio), name, rule, groups,
                           self.totals(set()), self.totals(removed, measured), self.per_channel_dense,
                           self.target.name if self.target else "host")

    def totals(self, removed: set, measured=None) -> PlanTotals:
        """The `PlanTotals` of a state: `analyze` metrics, activation peak, predicted TFLM arena and
        flash (of the model once trained, as the budget search predicts them), and ``measured``
        ``(ArenaFigure, flash bytes)`` when given."""
        report = self.price(removed) if removed else self.report
        arena, flash = estimate_deployment(self.graph, self.deps.pruned_shapes(removed), assume_trained=True,
                                           per_channel_dense=self.per_channel_dense, schedule=self.schedule,
                                           target=self.target)
        measured_arena, measured_flash = measured or (None, None)
        return PlanTotals(report.params, report.macs, report.weight_bytes_int8, report.act_bytes_f32,
                          report.peak_act_bytes_int8, report.peak_node, arena, int(flash), measured_arena,
                          measured_flash)

    def _group_plan(self, sel, removed: np.ndarray, reason: str | None) -> GroupPlan:
        """``removed``: a `Dependencies.removed_mask`."""
        group = sel.group
        dropped = int(removed[group.units].sum())
        kept, widths = {}, {}
        for name in group.producers:
            key = self.graph.node(name).outputs[0]
            kept[name] = tuple(self.deps.kept_positions(key, removed).tolist())
            widths[name] = len(self.deps.units[key])
        why = sel.reason if reason is None or not dropped else reason
        return GroupPlan(group.id, tuple(group.producers), tuple(group.layers), len(group.units),
                         len(group.units) - dropped, sel.share, why, kept, widths)


def _check_ratio(ratio) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0 <= ratio < 1:
        raise PruningError(f"`ratio` is the fraction of filters removed from each selected group and must be in "
                           f"[0, 1). Received: ratio={ratio!r}.")


def kept_width(total: int, free: int, ratio: float, round_to: int) -> int:
    """Units a group keeps when ``ratio`` of its ``free`` (unpinned) units go, rounded up to a
    multiple of ``round_to`` (never above ``total``)."""
    keep = total - int(round(ratio * free))
    return min(total, max(round_to, math.ceil(keep / round_to) * round_to))


def floor_width(width: int, min_filters: int, min_keep: float, round_to: int) -> int:
    """Fewest channels a producer ``width`` wide may keep: ``min_keep`` of it rounded up to
    ``round_to``, and at least ``min_filters`` (never above ``width``)."""
    share = math.ceil(round(min_keep * width, 9) / round_to) * round_to if min_keep > 0 else 0
    return min(width, max(min_filters, share))


def choose_units(deps: Dependencies, group: Group, scores: np.ndarray, count: int, min_filters: int,
                 already: set = frozenset(), round_to: int = 1, min_keep: float = 0.0) -> np.ndarray:
    """Up to ``count`` more of the lowest-scoring free units of ``group`` (not in ``already``),
    keeping every producing layer at least `floor_width` channels wide and, where it shrinks,
    at a multiple of ``round_to`` channels (the highest-scoring choices are given back for that)."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    counts = []  # per producer: its remaining width, channels each unit holds, its floor
    for name in group.producers:
        units = deps.units[deps.graph.node(name).outputs[0]]
        ids, n = np.unique(units, return_counts=True)
        held = dict(zip(ids.tolist(), n.tolist()))
        counts.append([len(units) - sum(held.get(u, 0) for u in already), held,
                       floor_width(len(units), min_filters, min_keep, round_to)])
    free = np.flatnonzero(~group.pinned)
    removed = []
    for index in free[np.argsort(scores[free], kind="stable")].tolist():
        unit = int(group.units[index])
        if unit in already or any(width - held.get(unit, 0) < floor for width, held, floor in counts):
            continue
        for entry in counts:
            entry[0] -= entry[1].get(unit, 0)
        removed.append(unit)
        if len(removed) == count:
            break
    return np.array(_round_widths(removed, counts, round_to), dtype=np.int64)


def _round_widths(removed: list, counts: list, round_to: int) -> list:
    """Give back the last-chosen units until every producer that lost channels keeps a multiple
    of ``round_to`` (``counts``: per producer, [remaining width, channels held per unit]).
    Narrow producers go first: a wide one (an Add over a concatenation) follows from them."""
    while round_to > 1 and removed:
        uneven = [held for width, held, _ in counts if width % round_to and any(u in held for u in removed)]
        if not uneven:
            break
        narrowest = min(uneven, key=len)
        unit = next(u for u in reversed(removed) if u in narrowest)
        removed.remove(unit)
        for entry in counts:
            entry[0] += entry[1].get(unit, 0)
    return removed
