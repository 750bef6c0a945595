"""Coupled channel groups: which channels of which layers must be pruned together.

Every channel position of every tensor gets a *slot*; the layer roles of `ops` say which slots
are the same channel (an Add couples its inputs, a Concatenate lays its inputs side by side,
a depthwise conv repeats its input channel ``m`` times...). Slots joined this way form a *unit*:
one removable channel across all layers it touches. Units that share a producing layer form a
*group*, the thing the complexity-driven selection chooses and prunes by a ratio.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from keras_cprune.graph.reader import Graph
from keras_cprune.graph.layers import spec_for


class _UnionFind:
    def __init__(self):
        self.parent = np.zeros(0, dtype=np.int64)

    def new(self, count: int) -> np.ndarray:
        start = len(self.parent)
        self.parent = np.concatenate([self.parent, np.arange(start, start + count)])
        return np.arange(start, start + count)

    def find(self, slots: np.ndarray) -> np.ndarray:
        roots = slots.copy()
        while True:
            nxt = self.parent[roots]
            if np.array_equal(nxt, roots):
                break
            roots = nxt
        self.parent[slots] = roots  # path compression for the next query
        return roots

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(self.find(a).tolist(), self.find(b).tolist()):
            x, y = self._root(x), self._root(y)
            if x != y:
                self.parent[max(x, y)] = min(x, y)

    def _root(self, x: int) -> int:
        while self.parent[x] != x:
            x = int(self.parent[x])
        return x


@dataclass
class Group:
    """Channels pruned together: ``units`` (ids), ``pinned`` flags and the layers involved."""

    id: int
    units: np.ndarray
    pinned: np.ndarray
    producers: list[str]
    layers: list[str] = field(default_factory=list)
    tensors: list[int] = field(default_factory=list)

    @property
    def prunable(self) -> bool:
        return bool(self.producers) and not bool(self.pinned.all())


@dataclass
class Dependencies:
    """The channel units of every tensor (``units[key][c]``) and the groups over them.

    ``pin_reasons``: layer name -> why that layer's channels are pinned; ``pin_sources``: the
    unit ids each pinning fixed and why ("model output", "feeds Lambda layer 'lam'"), in graph order."""

    graph: Graph
    units: dict[int, np.ndarray]
    groups: list[Group]
    pin_reasons: dict[str, str]
    pin_sources: list[tuple[np.ndarray, str]] = field(default_factory=list)

    def group_pin_reasons(self, group: Group) -> list[str]:
        """Why units of ``group`` are pinned, each reason once, in graph order."""
        return list(dict.fromkeys(why for units, why in self.pin_sources if np.isin(units, group.units).any()))

    def pin_summary(self) -> str:
        """Each unprunable group's producers and each pinned layer with weights, with the reasons:
        ``"'conv1' (model output), 'dense' (feeds Lambda layer 'lam')"``."""
        items, seen = [], set()
        for group in self.groups:
            if not group.prunable:
                names = " + ".join(repr(name) for name in group.producers)
                items.append(f"{names} ({'; '.join(self.group_pin_reasons(group))})")
        for name, why in self.pin_reasons.items():
            node = self.graph.node(name)
            if not node.is_input and id(node.layer) not in seen and getattr(node.layer, "weights", None):
                seen.add(id(node.layer))
                items.append(f"{name!r} ({why})")
        return ", ".join(items)

    @cached_property
    def unit_count(self) -> int:
        """One more than the largest unit id: the length of a `removed_mask`."""
        return 1 + max((int(u.max()) for u in self.units.values() if len(u)), default=-1)

    def removed_mask(self, removed) -> np.ndarray:
        """The ``removed`` unit ids (a set) as booleans indexed by unit id; a mask is returned as is.
        Loops over many tensors take the mask once instead of matching the set per tensor."""
        if isinstance(removed, np.ndarray):
            return removed
        mask = np.zeros(self.unit_count, dtype=bool)
        mask[np.fromiter(removed, dtype=np.int64, count=len(removed))] = True
        return mask

    def kept_positions(self, key: int, removed) -> np.ndarray:
        """Channel positions of tensor ``key`` that survive removing the ``removed`` units (a set
        or a `removed_mask`)."""
        units = self.units.get(key)
        if units is None:
            return None
        return np.flatnonzero(~self.removed_mask(removed)[units])

    def pruned_shapes(self, removed) -> dict[int, tuple]:
        """Shape of every tensor whose channel count changes when ``removed`` units go."""
        shapes, removed = {}, self.removed_mask(removed)
        for key, units in self.units.items():
            kept = len(self.kept_positions(key, removed))
            if kept != len(units):
                shapes[key] = self.graph.tensors[key].shape[:-1] + (kept,)
        return shapes


def build_dependencies(graph: Graph) -> Dependencies:
    """Walk ``graph`` once, couple channel slots by layer role and group them into units."""
    uf = _UnionFind()
    slots: dict[int, np.ndarray] = {}
    pinned: list[tuple[np.ndarray, str]] = []  # (slots, why)
    reasons: dict[str, str] = {}
    produced: dict[str, np.ndarray] = {}
    calls: dict[int, int] = {}
    for node in graph.nodes:
        calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
    for node in graph.nodes:
        in_shapes, out_shapes = graph.in_shapes(node), graph.out_shapes(node)
        spec = spec_for(node, in_shapes, out_shapes)
        role, why = spec.role, spec.why
        if role != "input" and (calls[id(node.layer)] > 1 or _unknown_channels(in_shapes + out_shapes)):
            role, why = "pin", "shared layer" if calls[id(node.layer)] > 1 else "unknown channel dimension"
        label = f"{node.class_name} layer {node.name!r}" + (f": {why}" if why else "")
        ins = [slots[k] for k in node.inputs]
        out = _out_slots(role, node, ins, in_shapes, out_shapes, uf)
        if role == "input":
            pinned.append((out, f"coupled with model input {node.name!r}"))
            reasons[node.name] = "model input"
        elif role in ("pin", "consume"):
            pinned += [(s, f"feeds {label}") for s in ins if role == "pin"] + [(out, f"coupled with the output of {label}")]
            reasons[node.name] = why or f"{node.class_name} is not channel-wise"
        if role == "produce":
            produced[node.name] = out
        for key in node.outputs:
            slots[key] = out if len(node.outputs) == 1 else uf.new(out_shapes[node.outputs.index(key)][-1])
            if len(node.outputs) > 1:
                pinned.append((slots[key], f"coupled with an output of multi-output {label}"))
    pinned += [(slots[k], "model output") for k in graph.outputs]
    units = {key: uf.find(s) for key, s in slots.items()}
    sources = [(uf.find(s), why) for s, why in pinned]
    pinned_units = set(np.concatenate([u for u, _ in sources]).tolist()) if sources else set()
    groups = _group_units(graph, units, {n: uf.find(s) for n, s in produced.items()}, pinned_units)
    return Dependencies(graph, units, groups, reasons, sources)


def _unknown_channels(shapes: list) -> bool:
    return any(not s or s[-1] is None for s in shapes)


def _out_slots(role, node, ins, in_shapes, out_shapes, uf) -> np.ndarray:
    channels = out_shapes[0][-1]
    if role == "depthwise":
        return np.repeat(ins[0], node.attrs.get("depth_multiplier", 1))
    if role == "pass":
        return ins[0]
    if role == "concat":
        return np.concatenate(ins)
    if role == "flatten":
        return np.tile(ins[0], channels // max(1, len(ins[0])))
    if role == "merge":
        full = [s for s in ins if len(s) == channels]  # width-1 inputs broadcast: not coupled
        for other in full[1:]:
            uf.union(full[0], other)
        return full[0]
    return uf.new(channels)  # produce, input, pin


def _group_units(graph: Graph, units: dict, produced: dict, pinned_units: set) -> list[Group]:
    """Join units that share a producing layer; attach every layer and tensor they touch."""
    all_units = np.unique(np.concatenate(list(units.values()))) if units else np.zeros(0, np.int64)
    uf = _UnionFind()
    uf.new(len(all_units))
    for out in produced.values():
        ids = np.searchsorted(all_units, np.unique(out))
        uf.union(np.full(len(ids) - 1, ids[0]), ids[1:])
    roots = uf.find(np.arange(len(all_units)))
    order = np.argsort(roots, kind="stable")
    root_values, starts = np.unique(roots[order], return_index=True)
    groups = {}
    for root, ids in zip(root_values.tolist(), np.split(order, starts[1:])):
        members = all_units[ids]
        groups[root] = Group(len(groups), members, np.isin(members, list(pinned_units)), [])

    def groups_of(key: int) -> list[Group]:
        return [groups[r] for r in np.unique(roots[np.searchsorted(all_units, units[key])]).tolist()]

    for name, out in produced.items():
        groups[int(roots[np.searchsorted(all_units, out[0])])].producers.append(name)
    for key in units:
        for group in groups_of(key):
            group.tensors.append(key)
    for node in graph.nodes:
        for group in {id(g): g for k in node.inputs + node.outputs for g in groups_of(k)}.values():
            group.layers.append(node.name)
    kept = [g for g in groups.values() if g.producers]
    for new_id, group in enumerate(kept):
        group.id = new_id
    return kept
