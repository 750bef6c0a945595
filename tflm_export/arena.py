"""`ArenaFigure`: one TFLite Micro tensor arena size, predicted or measured, and where it peaks.

Both packages speak of the arena with this one type: `micro.planner.predict_arena` and
keras_cprune's `estimate_arena` predict one, `runtime.runner.find_min_arena` and `verify` measure one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

SOURCES = ("predicted", "measured")


@dataclass(frozen=True)
class ArenaFigure:
    """The smallest ``arena_size`` (bytes) with which TFLM allocates and invokes a model.

    TFLM lays the arena out as a *head* of non-persistent buffers (activations and kernel scratch
    buffers, overlapping in time as its memory planner places them) and a *tail* of persistent
    data (interpreter, tensor and node structs, op data, per-channel quantization arrays).

    Attributes:
        bytes: the arena size to give TFLM (a measured figure is a multiple of the search step,
            16 bytes; compare a prediction with it as ``tflm_export.micro.planner.align(bytes)``).
        source: ``"predicted"`` (TFLM's allocator replayed, no runtime) or ``"measured"`` (the
            TFLM runtime: the smallest working size found by trying sizes).
        head_bytes: the head: planned activations and scratch buffers.
        tail_bytes: the tail: persistent allocations with their alignment padding.
        peak_op: index (run order) of the op at which the head reaches its top; -1 when unknown
            (a measurement).
        peak: what runs there: the Keras layer (keras_cprune) or the operator type (tflm_export).
        peak_tensors: the tensors alive at the peak (Keras graph tensor keys in keras_cprune,
            flatbuffer tensor indices in tflm_export).
        exact: False when part of a prediction is approximated (see ``approximated``).
        approximated: what a prediction approximated: layers without a known lowering, op types
            without a kernel model.
        probes: a measurement's ``(arena bytes, fits)`` per size tried, in order.

    Example:

    ```python
    figure = keras_cprune.estimate_arena(model, assume_trained=True)
    print(f"{figure.bytes:,} B {figure.source}, peak at {figure.peak}")
    ```
    """

    bytes: int
    source: str
    head_bytes: int = 0
    tail_bytes: int = 0
    peak_op: int = -1
    peak: str = ""
    peak_tensors: tuple = ()
    exact: bool = True
    approximated: tuple = ()
    probes: tuple = ()

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"Expected `source` to be one of {SOURCES}. Received: source={self.source!r}.")

    def __repr__(self) -> str:
        peak = f", peak at {self.peak!r}" if self.peak else ""
        return (f"ArenaFigure({self.bytes:,} B {self.source}: head {self.head_bytes:,} B + tail {self.tail_bytes:,} B"
                f"{peak}{'' if self.exact else ', approximated'})")

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict."""
        data = asdict(self)
        data.update(peak_tensors=list(self.peak_tensors), approximated=list(self.approximated),
                    probes=[list(p) for p in self.probes])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ArenaFigure":
        """The figure `to_dict` described."""
        return cls(**{**data, "peak_tensors": tuple(data.get("peak_tensors", ())),
                      "approximated": tuple(data.get("approximated", ())),
                      "probes": tuple(tuple(p) for p in data.get("probes", ()))})
