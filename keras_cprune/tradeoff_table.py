"""Trade-off table without training: resources of each mode at several pruning ratios."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass

from keras_cprune.config import MODES, check_per_channel_dense
from keras_cprune.pruning.context import PruneContext
from keras_cprune.budget.usage import usage_estimator

COLUMNS = ("params", "macs", "peak_act_bytes_int8", "arena_bytes", "flash_bytes")


@dataclass(frozen=True)
class TradeoffPoint:
    """The resources of ``model`` pruned in one ``mode`` at one ``ratio`` (see `Tradeoff`)."""

    mode: str
    ratio: float
    params: int
    macs: int
    peak_act_bytes_int8: int
    arena_bytes: int  # predicted minimal TFLM tensor arena of the table's target build
    flash_bytes: int  # estimated .tflite size


@dataclass(frozen=True)
class Tradeoff:
    """Resources of a model pruned in each mode at several ratios, as `tradeoff` returns them.

    Attributes:
        model_name: the Keras model's name.
        points: one `TradeoffPoint` per (mode, ratio): ``params``, ``macs``,
            ``peak_act_bytes_int8``, predicted ``arena_bytes`` and estimated ``flash_bytes``.
        target: the TFLM build the arenas are predicted for: ``"host"`` or ``"<core>/<kernels>"``.

    Example:

    ```python
    table = keras_cprune.tradeoff(model, ratios=(0.0, 0.25, 0.5))
    table.summary()
    table.plot("tradeoff.png")
    open("tradeoff.csv", "w").write(table.to_csv())
    ```
    """

    model_name: str
    points: tuple
    target: str = "host"

    def to_dict(self) -> dict:
        """``{"model_name", "target", "points": [point fields]}``, JSON-ready."""
        return {"model_name": self.model_name, "target": self.target, "points": [asdict(p) for p in self.points]}

    def to_json(self, **kwargs) -> str:
        """`to_dict` as JSON; ``kwargs`` go to ``json.dumps`` (e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(), **kwargs)

    def to_csv(self) -> str:
        """One CSV row per point: mode, ratio and the resource columns."""
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["mode", "ratio", *COLUMNS])
        writer.writeheader()
        writer.writerows(asdict(p) for p in self.points)
        return out.getvalue()

    def summary(self, print_fn=print) -> str:
        """Print (and return) the table, one line per mode and ratio.

        Args:
            print_fn: called with the whole table; None prints nothing. Default: `print`.

        Returns:
            The table as a string.
        """
        head = f"{'mode':<6}{'ratio':>6}{'params':>12}{'MACs':>14}{'peak act B':>12}{'arena B':>11}{'flash B':>11}"
        lines = [f"Trade-off of {self.model_name!r} (no training; arena and flash predicted for int8 TFLM, "
                 f"arena on {self.target})", head]
        for p in self.points:
            lines.append(f"{p.mode:<6}{p.ratio:>6.2f}{p.params:>12,}{p.macs:>14,}{p.peak_act_bytes_int8:>12,}"
                         f"{p.arena_bytes:>11,}{p.flash_bytes:>11,}")
        text = "\n".join(lines)
        if print_fn:
            print_fn(text)
        return text

    def plot(self, path: str) -> str:
        """Save a PNG of params, MACs, predicted arena and flash vs ratio, one line per mode.

        Args:
            path: the PNG file to write.

        Returns:
            ``path``.
        """
        from keras_cprune.plots import plot_tradeoff

        return plot_tradeoff(self, path)


def tradeoff(model, modes=MODES, ratios=(0.0, 0.2, 0.4, 0.6, 0.8), *, per_channel_dense: bool = True,
             target=None, **options) -> Tradeoff:
    """Params, MACs, peak activations, predicted arena and flash for each mode and ratio.

    Nothing is trained or rebuilt: each point prices the plan `prune` would make, the TFLM arena
    and flash predicted for the pruned model once trained (see `estimate_arena`).

    Args:
        model: a built Functional or Sequential `keras.Model` (Keras 3 or tf_keras).
        modes: the modes to compare: ``"PA"`` (parameters), ``"FA"`` (FLOPs), ``"MA"``
            (activation memory). Default: all three.
        ratios: fractions (0 <= r < 1) of each selected group's filters removed.
        per_channel_dense: the export priced, as `tflm_export.convert`'s (False: Dense weights
            quantized per tensor). Default True.
        target: the TFLM build the arena is predicted for (``"cortex-m4/cmsis_nn"``, a
            ``tflm_export.micro.targets.Target``; a board's: ``tflm_export.BOARDS[name].target``). Default None:
            the PyPI runtime.
        **options: `prune`'s planning options: ``importance``, ``rule``, ``threshold``,
            ``coverage``, ``min_filters``, ``round_to``, ``min_keep``, ``seed``.

    Returns:
        A `Tradeoff` with one point per mode and ratio, modes outermost.

    Example:

    ```python
    table = keras_cprune.tradeoff(model, modes=("PA", "MA"), ratios=(0.0, 0.5))
    table.summary()   # params, MACs, peak act., arena and flash bytes per point
    ```
    """
    context = PruneContext.of(model, per_channel_dense=check_per_channel_dense(per_channel_dense), target=target)
    estimate, points = usage_estimator(context), []
    for mode in modes:
        for ratio in ratios:
            removed, _ = context.choose(mode, ratio, **options)
            usage, report = estimate(removed), context.price(removed)
            points.append(TradeoffPoint(mode, float(ratio), report.params, report.macs, report.peak_act_bytes_int8,
                                        usage.arena.bytes, usage.flash))
    return Tradeoff(context.graph.model_name, tuple(points), context.target.name if context.target else "host")
