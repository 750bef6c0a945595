"""PruningPlan: which output channels each producing layer keeps, why, and what it saves."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from tflm_export.arena import ArenaFigure

from keras_cprune.graph.dependency import Dependencies
from keras_cprune.errors import PlanError

PEAK_NAME_WIDTH = 30  # widest before/after column of `PruningPlan.summary`, for the peak layers' names


@dataclass(frozen=True)
class PlanTotals:
    """Model totals on one side of a `PruningPlan` (before or after pruning).

    Attributes:
        params: parameters.
        macs: multiply-accumulates per inference.
        weight_bytes_int8: weight bytes of the int8 model.
        act_bytes_f32: the sum of all activation tensors at float32 (bytes).
        peak_act_bytes_int8: the largest int8 activation bytes alive at once.
        peak_node: the layer call at that activation peak (as `ComplexityReport.peak_node`).
        arena: the predicted TFLM `ArenaFigure` of the model once trained (``arena.peak``: its layer).
        flash_bytes: the predicted flatbuffer bytes.
        measured_arena: the arena of the converted flatbuffer (a budget search that verified):
            measured on the TFLM runtime, or predicted for the plan's target build; or None.
        measured_flash_bytes: the measured flatbuffer bytes, or None.

    Example:

    ```python
    plan = keras_cprune.plan_to_budget(model, keras_cprune.Budget(ram="64KB"))
    print(plan.before.arena.bytes, "->", plan.after.arena.bytes, "predicted,", plan.after.measured_arena.bytes, "measured")
    ```
    """

    params: int
    macs: int
    weight_bytes_int8: int
    act_bytes_f32: int
    peak_act_bytes_int8: int
    peak_node: str
    arena: ArenaFigure
    flash_bytes: int
    measured_arena: ArenaFigure | None = None
    measured_flash_bytes: int | None = None

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict (figures as dicts)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(arena=self.arena.to_dict(), measured_arena=self.measured_arena and self.measured_arena.to_dict())
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "PlanTotals":
        """The totals `to_dict` described."""
        measured = data.get("measured_arena")
        return cls(**{**data, "arena": ArenaFigure.from_dict(data["arena"]),
                      "measured_arena": measured and ArenaFigure.from_dict(measured)})


# (label, value of a `PlanTotals`) per row of `PruningPlan.summary`
METRICS = (("Parameters", lambda t: t.params), ("MACs", lambda t: t.macs),
           ("Weights int8 (B)", lambda t: t.weight_bytes_int8), ("Activations f32 (B)", lambda t: t.act_bytes_f32),
           ("Peak act. int8 (B)", lambda t: t.peak_act_bytes_int8), ("TFLM arena (B, pred.)", lambda t: t.arena.bytes),
           ("Flash (B, pred.)", lambda t: t.flash_bytes))


@dataclass(frozen=True)
class GroupPlan:
    """One channel group: its layers, share in the mode, and kept output channels per producer."""

    group: int
    producers: tuple
    layers: tuple
    channels: int
    kept_channels: int
    share: float
    reason: str
    kept: dict = field(default_factory=dict)  # producer name -> sorted kept output channel indices
    widths: dict = field(default_factory=dict)  # producer name -> output channels before pruning

    @property
    def removed(self) -> dict:
        """Producer name -> sorted removed output channel indices."""
        return {name: tuple(sorted(set(range(self.widths[name])) - set(kept))) for name, kept in self.kept.items()}


@dataclass(frozen=True)
class PruningPlan:
    """What `prune` did or will do; JSON-serializable and re-appliable with `apply_plan`.

    Attributes:
        model_name: the name of the model the plan was made for.
        mode: ``"PA"``, ``"FA"`` or ``"MA"`` (parameters, FLOPs or activation memory).
        ratio: fraction of each selected group's filters removed (for a budget search, the
            ratio it stopped at).
        importance: the filter ranking used (``"l1"``, ``"l2"``, ``"bn_gamma"``, ``"random"``, or a
            callable's name).
        rule: the group selection rule (see `keras_cprune.pruning.selection`).
        groups: one `GroupPlan` per channel group: its producers, kept channel indices and why.
        before: the `PlanTotals` before pruning: parameters, MACs, bytes, the predicted arena and flash.
        after: the same after pruning (with the measured arena and flash when a budget search measured them).
        per_channel_dense: the int8 export the arena and flash are for (`tflm_export.convert`'s
            option; False: Dense weights quantized per tensor).
        target: the TFLM build the arena is predicted for: ``"host"`` (the PyPI runtime) or
            ``"<core>/<kernels>"`` (``tflm_export.micro.targets.TARGETS``).

    Example:

    ```python
    pruned, plan = keras_cprune.prune(model, "MA", 0.5, return_plan=True)
    plan.summary()
    open("plan.json", "w").write(plan.to_json(indent=2))
    again = keras_cprune.apply_plan(model, keras_cprune.PruningPlan.from_json(open("plan.json").read()))
    ```
    """

    model_name: str
    mode: str
    ratio: float
    importance: str
    rule: str
    groups: tuple
    before: PlanTotals
    after: PlanTotals
    per_channel_dense: bool = True
    target: str = "host"

    def __repr__(self) -> str:
        pruned = sum(1 for g in self.groups if g.kept_channels < g.channels)
        return (f"PruningPlan(model={self.model_name!r}, mode={self.mode}, ratio={self.ratio:g}, "
                f"groups pruned={pruned}/{len(self.groups)}, params {self.before.params:,} -> {self.after.params:,})")

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict; each group also lists its ``removed`` channels."""
        data = asdict(self)
        data.update(before=self.before.to_dict(), after=self.after.to_dict())
        data["groups"] = [{**asdict(g), "producers": list(g.producers), "layers": list(g.layers),
                           "kept": {k: [int(i) for i in v] for k, v in g.kept.items()},
                           "removed": {k: list(v) for k, v in g.removed.items()}} for g in self.groups]
        return data

    def to_json(self, **kwargs) -> str:
        """`to_dict` as JSON; ``kwargs`` go to ``json.dumps`` (e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict) -> "PruningPlan":
        """The plan `to_dict` described; `PlanError` if ``data`` is not one."""
        try:
            groups = tuple(GroupPlan(**{**{k: v for k, v in g.items() if k != "removed"},
                                        "producers": tuple(g["producers"]), "layers": tuple(g["layers"]),
                                        "kept": {k: tuple(v) for k, v in g["kept"].items()}}) for g in data["groups"])
            return cls(**{**data, "groups": groups, "before": PlanTotals.from_dict(data["before"]),
                          "after": PlanTotals.from_dict(data["after"])})
        except (KeyError, TypeError) as exc:
            raise PlanError(f"Not a keras-cprune pruning plan: {exc}. Expected the output of PruningPlan.to_json().") from exc

    @classmethod
    def from_json(cls, text: str) -> "PruningPlan":
        """The plan `to_json` wrote; `PlanError` if the JSON in ``text`` is not a plan."""
        return cls.from_dict(json.loads(text))

    def narrowest_layer(self) -> tuple:
        """``(layer, kept, original)`` of the producer keeping the smallest share of its channels."""
        rows = [(len(kept) / g.widths[name], name, len(kept), g.widths[name])
                for g in self.groups for name, kept in g.kept.items()]
        return min(rows, default=(1.0, "-", 0, 0))[1:]

    def summary(self, print_fn=print) -> str:
        """Print (and return) the before/after table of the model totals and the pruned groups.

        Args:
            print_fn: called with the whole table; None prints nothing. Default: `print`.

        Returns:
            The table as a string.
        """
        peaks = (("Activation peak at", lambda t: t.peak_node), ("Arena peak at", lambda t: t.arena.peak))
        names = [str(peak(side)) for _, peak in peaks for side in (self.before, self.after)]
        width = max(14, min(PEAK_NAME_WIDTH, max(map(len, names)) + 2))  # a column holds a layer name
        lines = [f"Pruning plan for {self.model_name!r}: mode {self.mode}, ratio {self.ratio:g}, "
                 f"importance {self.importance}, rule {self.rule}"
                 + ("" if self.per_channel_dense else "; arena and flash of the per-tensor Dense export")
                 + ("" if self.target == "host" else f"; arena of TFLM on {self.target}"),
                 f"{'':<22}{'before':>{width}}{'after':>{width}}{'change':>9}"]
        for label, value in METRICS:
            b, a = value(self.before), value(self.after)
            lines.append(f"{label:<22}{b:>{width},}{a:>{width},}{(100 * (a - b) / b if b else 0):>8.1f}%")
        for label, peak in peaks:
            b, a = (_middle_cut(str(peak(side)), width - 2) for side in (self.before, self.after))
            lines.append(f"{label:<22}{b:>{width}}{a:>{width}}")
        measured = self.after.measured_arena
        arena_label = "TFLM arena measured" if measured is None or measured.source == "measured" else "Arena of .tflite"
        for label, value in ((arena_label, measured and measured.bytes),
                             ("Flash measured (B)", self.after.measured_flash_bytes)):
            if value is not None:
                lines.append(f"{label:<22}{'':>{width}}{value:>{width},}")
        pruned = [g for g in self.groups if g.kept_channels < g.channels]
        narrowest = self.narrowest_layer()
        lines.append(f"Groups pruned: {len(pruned)} of {len(self.groups)}; narrowest layer {narrowest[0]!r} keeps "
                     f"{narrowest[1]} of {narrowest[2]} channels")
        for g in pruned:
            lines.append(f"  {', '.join(g.producers)[:48]:<50}{g.channels:>5} -> {g.kept_channels:<5}"
                         f"{g.kept_channels / g.channels:>5.0%} ({g.reason})")
        text = "\n".join(lines)
        if print_fn:
            print_fn(text)
        return text


def _middle_cut(name: str, width: int) -> str:
    """``name`` in at most ``width`` characters, its middle replaced by "…" (both ends of a Keras
    layer name tell it apart: ``block_13_expand_relu``)."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "…" + name[len(name) - (width - 1 - head):]


def removed_units_of(plan: PruningPlan, deps: Dependencies) -> set:
    """The channel units of ``deps`` that ``plan`` removes; `PlanError` if they do not match."""
    graph, removed = deps.graph, set()
    for g in plan.groups:
        for name, kept in g.kept.items():
            try:
                node = graph.node(name)
            except KeyError:
                raise PlanError(f"The plan prunes layer {name!r}, which the model {graph.model_name!r} does not have. "
                                "Apply a plan only to the architecture it was made for.") from None
            units = deps.units[node.outputs[0]]
            if len(units) != g.widths[name]:
                raise PlanError(f"Layer {name!r} has {len(units)} output channels; the plan expects {g.widths[name]}.")
            if not kept or not all(isinstance(i, int) and 0 <= i < len(units) for i in kept):
                raise PlanError(f"The plan keeps channels {list(kept)} of layer {name!r}; expected at least one "
                                f"index, each in [0, {len(units)}). Re-create the plan with `prune(..., return_plan=True)`.")
            mask = np.ones(len(units), dtype=bool)
            mask[list(kept)] = False
            removed |= set(units[mask].tolist())
    for g in plan.groups:
        for name, kept in g.kept.items():
            units = deps.units[graph.node(name).outputs[0]]
            if np.isin(units[list(kept)], list(removed)).any():
                raise PlanError(f"The plan keeps channels of {name!r} that are coupled to channels it removes "
                                "elsewhere; the plan does not match this model's channel dependencies.")
    return removed
