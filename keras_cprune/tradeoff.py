"""Trade-off table without training: resources of each mode at several pruning ratios."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass

from .arena import estimate_deployment
from .planning import PruneContext
from .selection import MODES

COLUMNS = ("params", "macs", "peak_act_bytes_int8", "arena_bytes", "flash_bytes")


@dataclass(frozen=True)
class TradeoffPoint:
    mode: str
    ratio: float
    params: int
    macs: int
    peak_act_bytes_int8: int
    arena_bytes: int  # predicted minimal TFLM tensor arena
    flash_bytes: int  # estimated .tflite size


@dataclass(frozen=True)
class Tradeoff:
    model_name: str
    points: tuple

    def to_dict(self) -> dict:
        return {"model_name": self.model_name, "points": [asdict(p) for p in self.points]}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["mode", "ratio", *COLUMNS])
        writer.writeheader()
        writer.writerows(asdict(p) for p in self.points)
        return out.getvalue()

    def summary(self, print_fn=print) -> str:
        head = f"{'mode':<6}{'ratio':>6}{'params':>12}{'MACs':>14}{'peak act B':>12}{'arena B':>11}{'flash B':>11}"
        lines = [f"Trade-off of {self.model_name!r} (no training; arena and flash predicted for int8 TFLM)", head]
        for p in self.points:
            lines.append(f"{p.mode:<6}{p.ratio:>6.2f}{p.params:>12,}{p.macs:>14,}{p.peak_act_bytes_int8:>12,}"
                         f"{p.arena_bytes:>11,}{p.flash_bytes:>11,}")
        text = "\n".join(lines)
        if print_fn:
            print_fn(text)
        return text

    def plot(self, path: str) -> str:
        """PNG: params, MACs and predicted arena vs ratio, one line per mode."""
        from .plots import plot_tradeoff

        return plot_tradeoff(self, path)


def tradeoff(model, modes=MODES, ratios=(0.0, 0.2, 0.4, 0.6, 0.8), **options) -> Tradeoff:
    """Params, MACs, peak activations, predicted arena and flash (of the pruned model once
    trained) for each mode and ratio."""
    context = PruneContext.of(model)
    points = []
    for mode in modes:
        for ratio in ratios:
            _, removed = context.plan(mode, ratio, **options)
            arena, flash = estimate_deployment(context.graph, context.deps.pruned_shapes(removed), assume_trained=True,
                                               schedule=context.schedule)
            report = context.price(removed)
            points.append(TradeoffPoint(mode, float(ratio), report.params, report.macs, report.peak_act_bytes_int8,
                                        arena.bytes, flash))
    return Tradeoff(context.graph.model_name, tuple(points))
