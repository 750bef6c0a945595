"""Records of `board_fit.BoardFitTuner` trials: `TrialPoint`, `ExportedTrial`, the per-trial JSON
record (`RECORD`, read and written through ``tf.io.gfile``, so remote KerasTuner directories work)
and the plot of objective vs predicted resources.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from tflm_export.budget import Budget

RECORD = "board_fit.json"  # per trial directory: who ran it, with which budget, predicted usage


@dataclass(frozen=True)
class TrialPoint:
    """One completed trial: objective ``score``, hyperparameter ``values`` and predicted
    deployment (bytes, MACs) of its pruned model; ``tuner_id``: the process that trained it."""

    trial_id: str
    score: float
    values: dict
    arena_bytes: int
    flash_bytes: int
    macs: int
    params: int
    tuner_id: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ExportedTrial:
    """The trial `BoardFitTuner.export_best` exported, with its TFLM measurement (``report``)."""

    trial_id: str
    score: float
    values: dict
    report: object  # tflm_export.TFLMReport
    out_dir: str
    model: object = field(default=None, repr=False)  # the exported Keras model

    @property
    def fits(self) -> bool:
        return self.report.fits

    def to_dict(self) -> dict:
        return {"trial_id": self.trial_id, "score": self.score, "values": self.values, "out_dir": self.out_dir,
                "fits": self.fits, "report": self.report.to_dict()}

    def __repr__(self) -> str:
        return (f"ExportedTrial(trial_id={self.trial_id!r}, score={self.score:.4f}, fits={self.fits}, "
                f"arena_bytes={self.report.arena.bytes:,}, flash_bytes={self.report.flash_bytes:,})")


def write_json(path: str, data: dict) -> None:
    """``data`` as indented JSON at ``path`` (floats for numpy numbers)."""
    import tensorflow as tf  # tf.io.gfile: local paths and the remote ones KerasTuner supports (gs://...)

    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(data, indent=2, default=float))


def read_json(path: str) -> dict | None:
    """The JSON at ``path``, None when there is no file."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.loads(f.read())


def plot_trials(points: list, path: str, budget: Budget, objective: str, board: str | None = None) -> str:
    """Three panels: ``objective`` vs predicted arena, flash and MACs, a marker per mode."""
    from keras_cprune.plots import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0), sharey=True)
    panels = (("arena_bytes", "predicted TFLM arena (bytes)", budget.ram),
              ("flash_bytes", "predicted flash (bytes)", budget.flash), ("macs", "MACs per inference", budget.macs))
    modes = list(dict.fromkeys(p.values.get("mode") for p in points))
    for ax, (attr, label, limit) in zip(axes, panels):
        for index, mode in enumerate(modes):
            for scratch, fill in ((False, None), (True, "none")):
                pts = [p for p in points if p.values.get("mode") == mode and bool(p.values.get("reinitialize")) == scratch]
                if pts:
                    ax.scatter([getattr(p, attr) for p in pts], [p.score for p in pts], marker="os^"[index % 3],
                               color=f"C{index}", facecolors=fill, s=40, zorder=3,
                               label=f"{mode}, {'from scratch' if scratch else 'kept weights'}")
        if points:
            ax.scatter([getattr(points[0], attr)], [points[0].score], marker="*", s=400, color="gold",
                       edgecolors="black", zorder=2, label="best")  # behind: trials on the same spot stay visible
        if limit is not None:
            ax.axvline(limit, color="red", linestyle="--", label="budget")
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda value, _: f"{value:,.0f}"))
        ax.tick_params(axis="x", labelrotation=20)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(objective)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{len(points)} trials: {objective} vs predicted resources, budget {board or budget}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
