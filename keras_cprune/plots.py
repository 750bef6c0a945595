"""Matplotlib figures (PNG, headless Agg backend)."""
from __future__ import annotations

from collections import Counter


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


SHARES = (("param_share", "parameters"), ("flops_share", "FLOPs"), ("memory_share", "activation memory"))
TOP_LAYERS = 25  # bars a layer-share chart shows at most, besides "other"
# Layers whose output repeats the tensor before it (the int8 converter folds or fuses them away):
# their activation memory does not rank them, or BatchNorm/ReLU copies would crowd out the convs.
REPEATS_INPUT = {"BatchNormalization", "ReLU", "Activation", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
                 "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "Identity"}


def layer_share_rows(report, top: int = TOP_LAYERS) -> list:
    """The rows of `plot_layer_shares`' chart.

    The layers with a nonzero share, in model order; past ``top`` of them, the ``top`` largest
    by their largest share (the memory share of a `REPEATS_INPUT` layer not counted; the
    peak-memory layer always kept) and one "other (k layers)" row summing the rest.

    Args:
        report: a `ComplexityReport`.
        top: most layers kept by name. Default 25.

    Returns:
        A list of ``(label, {share attribute: fraction}, is_peak)``.
    """
    costly = [r for r in report.layers if any(getattr(r, attr) for attr, _ in SHARES)]

    def cost(r) -> tuple:
        shares = [getattr(r, attr) for attr, _ in SHARES if attr != "memory_share" or r.class_name not in REPEATS_INPUT]
        return r.name == report.peak_node, max(shares)

    kept = {id(r) for r in (sorted(costly, key=cost, reverse=True)[:top] if len(costly) > top else costly)}
    rows = [(f"{r.name} ({r.class_name})", {attr: getattr(r, attr) for attr, _ in SHARES}, r.name == report.peak_node)
            for r in costly if id(r) in kept]
    rest = [r for r in costly if id(r) not in kept]
    if rest:
        rows.append((f"other ({len(rest)} layers)", {attr: sum(getattr(r, attr) for r in rest) for attr, _ in SHARES},
                     False))
    return rows


def plot_layer_shares(report, path: str, top: int = TOP_LAYERS) -> str:
    """Save horizontal bars of each layer's share (%) of the model's parameters, FLOPs and
    activation memory as a PNG, like the paper, readable at 1,200 px wide for any model.

    Only layers with a nonzero share, the ``top`` largest (see `layer_share_rows`); the layer at
    the activation-memory peak in red. An "other" bar longer than the rest is cut at the axis
    end, its value written on it.

    Args:
        report: a `ComplexityReport` (from `analyze`).
        path: the PNG file to write.
        top: most layers shown by name; the rest are summed in one "other" bar. Default 25.

    Returns:
        ``path``.

    Example:

    ```python
    from keras_cprune.plots import plot_layer_shares

    plot_layer_shares(keras_cprune.analyze(model), "layers.png", top=15)
    ```
    """
    plt = _pyplot()
    rows = layer_share_rows(report, top)
    height = 0.8 / len(SHARES)
    fig, ax = plt.subplots(figsize=(10.0, 1.6 + 0.36 * len(rows)))  # 1,200 px wide at dpi 120
    named = [100 * v for label, shares, _ in rows if not label.startswith("other (") for v in shares.values()]
    limit = 1.12 * max(named or [100 * v for _, shares, _ in rows for v in shares.values()] or [1.0])
    for k, (attr, label) in enumerate(SHARES):
        y = [i + (k - 1) * height for i in range(len(rows))]
        values = [100 * shares[attr] for _, shares, _ in rows]
        ax.barh(y, [min(v, limit) for v in values], height, label=label)
        for yi, v in zip(y, values):
            if v > limit:  # the "other" bar: cut, with its value
                ax.text(limit * 0.99, yi, f"{v:.0f}% >", ha="right", va="center", fontsize=7, color="white")
    ax.set_yticks(range(len(rows)), [_short(label) for label, _, _ in rows], fontsize=8)
    for tick, (_, _, peak) in zip(ax.get_yticklabels(), rows):
        if peak:
            tick.set_fontweight("bold")
            tick.set_color("crimson")
    ax.set_xlim(0, limit)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # model order, top to bottom
    ax.set_xlabel("share of model total (%)")
    ax.grid(axis="x", alpha=0.3)
    shown = sum(1 for label, _, _ in rows if not label.startswith("other ("))
    peak = f", at {report.peak_node} (red)" if any(row[2] for row in rows) else ""
    ax.set_title(f"Layer-wise complexity of {report.model_name}: {shown} of {len(report.layers)} layers\n"
                 f"peak activation memory {report.peak_act_bytes_int8:,} B int8{peak}", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _short(label: str, width: int = 44) -> str:
    """``label`` cut in the middle to ``width`` characters, keeping both ends (prefix and layer type)."""
    if len(label) <= width:
        return label
    return label[:width // 2 - 1] + "…" + label[-(width - width // 2):]


def plot_tradeoff(table, path: str) -> str:
    """Save four panels (parameters, MACs, predicted TFLM arena and flash bytes) vs pruning
    ratio, a line per mode, as a PNG.

    Args:
        table: a `Tradeoff` (from `tradeoff`).
        path: the PNG file to write.

    Returns:
        ``path``.

    Example:

    ```python
    from keras_cprune.plots import plot_tradeoff

    plot_tradeoff(keras_cprune.tradeoff(model), "tradeoff.png")
    ```
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    panels = (("params", "parameters"), ("macs", "MACs"), ("arena_bytes", "arena (bytes)"),
              ("flash_bytes", "flash (bytes)"))
    for ax, (attr, label) in zip(axes, panels):
        for index, mode in enumerate(dict.fromkeys(p.mode for p in table.points)):
            pts = [p for p in table.points if p.mode == mode]
            style = dict(marker="os^"[index % 3], linestyle=("-", "--", ":")[index % 3])  # coinciding modes stay visible
            ax.plot([p.ratio for p in pts], [getattr(p, attr) for p in pts], label=mode, **style)
        ax.set_xlabel("pruning ratio")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"Resources vs pruning ratio: {table.model_name}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def spread(points: list, x: str, y: str = "accuracy") -> tuple:
    """Mean, lowest and highest ``y`` over the points sharing each value of ``x`` (several seeds
    of one configuration), by increasing ``x``.

    Args:
        points: dicts holding keys ``x`` and ``y``.
        x: the key grouping the points, e.g. ``"params"``.
        y: the key averaged. Default ``"accuracy"``.

    Returns:
        ``(xs, means, lows, highs)``, four lists; a lone point gives its value three times.
    """
    groups: dict = {}
    for p in points:
        groups.setdefault(p[x], []).append(p[y])
    xs = sorted(groups)
    return (xs, [sum(groups[v]) / len(groups[v]) for v in xs], [min(groups[v]) for v in xs],
            [max(groups[v]) for v in xs])


def plot_accuracy_tradeoff(points: list, path: str) -> str:
    """Save accuracy vs parameters, FLOPs and peak activation memory as a PNG, one series per mode.

    Points of a mode at the same resources (e.g. several seeds) are drawn as their mean with an
    error bar from the lowest to the highest accuracy; mode ``"baseline"`` is drawn as a star.

    Args:
        points: one dict per trained model with keys ``"mode"``, ``"accuracy"``, ``"params"``,
            ``"flops"`` and ``"peak_act_bytes_int8"`` (bytes).
        path: the PNG file to write.

    Returns:
        ``path``.

    Example:

    ```python
    from keras_cprune.plots import plot_accuracy_tradeoff

    points = [{"mode": "baseline", "accuracy": 0.86, "params": 80_000, "flops": 4_000_000,
               "peak_act_bytes_int8": 18_000},
              {"mode": "MA", "accuracy": 0.85, "params": 40_000, "flops": 2_000_000,
               "peak_act_bytes_int8": 9_000}]
    plot_accuracy_tradeoff(points, "accuracy.png")
    ```
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    panels = (("params", "parameters"), ("flops", "FLOPs"), ("peak_act_bytes_int8", "peak activations int8 (B)"))
    repeated = False
    for ax, (attr, label) in zip(axes, panels):
        for mode in dict.fromkeys(p["mode"] for p in points):
            xs, means, lows, highs = spread([p for p in points if p["mode"] == mode], attr)
            repeated |= lows != highs
            style = dict(marker="*", markersize=12, linestyle="none") if mode == "baseline" else dict(marker="o")
            ax.errorbar(xs, means, yerr=[[m - lo for m, lo in zip(means, lows)], [hi - m for m, hi in zip(means, highs)]],
                        capsize=3, label=mode, **style)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy" + (" (mean, min-max)" if repeated else ""))
    axes[0].legend()
    runs = max(Counter((p["mode"], p["params"]) for p in points).values(), default=1)
    fig.suptitle("Accuracy vs resources (pruned models trained from scratch"
                 + (f"; up to {runs} runs per point, bars from the lowest to the highest)" if repeated else ")"))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
