"""TFLMReport: what the real TFLM runtime measured on an int8 model, and whether it fits."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Fit:
    """One resource against its limit: ``used`` and ``limit`` in bytes (MACs for macs)."""

    used: int
    limit: int

    @property
    def fits(self) -> bool:
        return self.used <= self.limit

    @property
    def headroom(self) -> int:
        return self.limit - self.used


@dataclass(frozen=True)
class TFLMReport:
    """Measurements of one flatbuffer on the PyPI ``tflite-micro`` runtime (x86-64 host).

    ``arena_bytes`` is the smallest ``arena_size`` (16-byte steps) that allocates and invokes;
    in TFLM the input and output tensors live inside the arena, so it is all the RAM the model
    needs besides the runtime's code and stack. ``flash_bytes`` is the compiled ``g_model``
    array when the Arm compiler ran, else the flatbuffer size.
    """

    flatbuffer_bytes: int
    arena_bytes: int
    predicted_arena_bytes: int
    arena_probes: int
    ops: dict  # builtin op name -> count
    latency_ms: float | None = None  # median host invoke time
    allocations: str = field(default="", repr=False)
    tflite_vs_tflm_max_diff: int | None = None  # 0: bit-exact with tf.lite.Interpreter
    keras_top1_agreement: float | None = None
    int8_accuracy: float | None = None
    float_accuracy: float | None = None
    flash_bytes: int | None = None
    compile: dict | None = None  # arm-none-eabi result (see firmware.compile_check)
    resources: dict = field(default_factory=dict)  # name -> Fit

    @property
    def fits(self) -> bool:
        return all(f.fits for f in self.resources.values())

    def to_dict(self) -> dict:
        data = asdict(self)
        data["resources"] = {k: {"used": f.used, "limit": f.limit, "fits": f.fits, "headroom": f.headroom}
                             for k, f in self.resources.items()}
        data["fits"] = self.fits
        return data

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def summary(self, print_fn=print) -> str:
        lines = [f"TFLM report: flatbuffer {self.flatbuffer_bytes:,} B, arena {self.arena_bytes:,} B "
                 f"(predicted {self.predicted_arena_bytes:,} B, {self.arena_probes} runtime process(es))",
                 "ops: " + ", ".join(f"{op} x{n}" for op, n in sorted(self.ops.items()))]
        if self.latency_ms is not None:
            lines.append(f"host latency: {self.latency_ms:.3f} ms per invoke (median)")
        if self.tflite_vs_tflm_max_diff is not None:
            lines.append(f"TFLM vs tf.lite.Interpreter: max |diff| {self.tflite_vs_tflm_max_diff} "
                         f"({'bit-exact' if self.tflite_vs_tflm_max_diff == 0 else 'not bit-exact'})")
        if self.keras_top1_agreement is not None:
            lines.append(f"top-1 agreement with the Keras float model: {100 * self.keras_top1_agreement:.2f}%")
        if self.int8_accuracy is not None:
            lines.append(f"accuracy: int8 on TFLM {100 * self.int8_accuracy:.2f}%"
                         + (f", Keras float {100 * self.float_accuracy:.2f}%" if self.float_accuracy is not None else ""))
        if self.flash_bytes is not None:
            lines.append(f"flash: {self.flash_bytes:,} B")
        for name, f in self.resources.items():
            lines.append(f"{name}: {f.used:,} of {f.limit:,} -> {'fits' if f.fits else 'DOES NOT FIT'} "
                         f"(headroom {f.headroom:,})")
        text = "\n".join(lines)
        if print_fn:
            print_fn(text)
        return text
