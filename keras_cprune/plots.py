"""Matplotlib figures (PNG, headless Agg backend)."""
from __future__ import annotations


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_layer_shares(report, path: str) -> str:
    """Bar chart of each analysed layer's parameter, FLOPs and memory share (%), like the paper."""
    plt = _pyplot()
    rows = [r for r in report.layers if r.params or r.macs or r.class_name not in ("Dropout", "Activation")]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(rows)), 4.0))
    width = 0.28
    for offset, attr, label in ((-width, "param_share", "parameters"), (0, "flops_share", "FLOPs"),
                                (width, "memory_share", "activation memory")):
        ax.bar([i + offset for i in x], [100 * getattr(r, attr) for r in rows], width, label=label)
    ax.set_xticks(list(x), [r.name for r in rows], rotation=90, fontsize=6)
    ax.set_ylabel("share of model total (%)")
    ax.set_title(f"Layer-wise complexity of {report.model_name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_tradeoff(table, path: str) -> str:
    """Four panels (parameters, MACs, predicted TFLM arena and flash) vs pruning ratio, a line per mode."""
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


def plot_accuracy_tradeoff(points: list, path: str) -> str:
    """Accuracy vs parameters, FLOPs and peak activation memory, one series per mode."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    panels = (("params", "parameters"), ("flops", "FLOPs"), ("peak_act_bytes_int8", "peak activations int8 (B)"))
    for ax, (attr, label) in zip(axes, panels):
        for mode in dict.fromkeys(p["mode"] for p in points):
            pts = sorted((p for p in points if p["mode"] == mode), key=lambda p: p[attr])
            style = dict(marker="*", markersize=12, linestyle="none") if mode == "baseline" else dict(marker="o")
            ax.plot([p[attr] for p in pts], [p["accuracy"] for p in pts], label=mode, **style)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[0].legend()
    fig.suptitle("Accuracy vs resources (pruned models trained from scratch)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
