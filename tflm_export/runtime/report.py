"""TFLMReport: what the real TFLite Micro runtime measured on an int8 model, and whether it fits."""
from __future__ import annotations

import json
from dataclasses import dataclass, fields

from tflm_export.arena import ArenaFigure
from tflm_export.budget import UNITS, Budget
from tflm_export.firmware.compile import CompileResult


@dataclass(frozen=True)
class TFLMReport:
    """What the PyPI ``tflite-micro`` runtime (x86-64 host build) measured on one int8 flatbuffer.

    TFLM plans the input and output tensors inside the arena, so ``arena.bytes`` is all the RAM the
    model needs besides the interpreter object, op resolver and stack (not counted); ``ram`` of a
    budget is compared with it. On ``tflite_max_abs_diff``: convolutions, pooling, ADD, MUL,
    MEAN... match tf.lite.Interpreter exactly; FULLY_CONNECTED does not, and there is no fixed
    bound. TFLM requantizes its int32 accumulator with gemmlowp's two roundings
    (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT), as TFLite's optimized kernels do;
    TFLite's reference per-channel kernel rounds once. Fed equal inputs, one FULLY_CONNECTED op
    differs by at most 1 step, in about 0.1% of its outputs; each later layer carries an input
    difference on, scaled by its weights, so a stack of Dense layers differs by more: 2-4 steps in
    15% of the outputs of MLPerf Tiny's autoencoder (Dense 640-128x4-8-128x4-640 with BatchNorm and
    ReLU; random weights), 6 in its hidden layers; the test models with one or two Dense layers at
    the end stayed within 1 step.

    Attributes:
        flatbuffer_bytes: size of the ``.tflite`` flatbuffer.
        arena: the measured `ArenaFigure`: the smallest ``arena_size`` (16-byte steps) that allocates
            and invokes, and the ``(size, fits)`` probes the search tried, each in its own runtime process.
        arena_breakdown: the runtime's ``print_allocations()`` in bytes (head: planned activations
            and scratch buffers; tail: persistent data by kind).
        ops: builtin op name -> count.
        macs: multiply-accumulates per inference.
        inputs: a `TensorInfo` per input: name, shape, dtype, scale, zero_point.
        outputs: a `TensorInfo` per output.
        flash_bytes: the compiled model array when the Arm compiler ran (``compile``), else the
            flatbuffer size.
        latency_ms: median host time per invoke, or None.
        latency_runs: invokes ``latency_ms`` is the median of.
        samples: test inputs run on TFLM.
        tflite_max_abs_diff: largest difference, in output quantization steps (a float for float32
            outputs), between TFLM and ``tf.lite.Interpreter`` on ``samples`` inputs; 0 is bit-exact.
        tflite_mismatches: output values (of samples x output size) that differ.
        keras_top1_agreement: fraction of samples on which TFLM int8 and the Keras float model agree.
        int8_accuracy: accuracy of the int8 model on TFLM, with labels.
        float_accuracy: accuracy of the Keras float model, with labels.
        compile: the `CompileResult` of the Arm compile check, or None.
        budget: the `Budget` checked (``resources``, ``fits``), or None.
        board: the board the budget is of, or None.

    Example:

    ```python
    report = tflm_export.verify(tflite_bytes, budget=Budget(ram="64KB"))
    report.fits, report.resources["ram"].headroom
    ```
    """

    flatbuffer_bytes: int
    arena: ArenaFigure
    arena_breakdown: dict
    ops: dict
    macs: int
    inputs: tuple
    outputs: tuple
    flash_bytes: int
    latency_ms: float | None = None
    latency_runs: int = 0
    samples: int = 0
    tflite_max_abs_diff: int | float | None = None
    tflite_mismatches: int | None = None
    keras_top1_agreement: float | None = None
    int8_accuracy: float | None = None
    float_accuracy: float | None = None
    compile: CompileResult | None = None
    budget: Budget | None = None
    board: str | None = None

    @property
    def resources(self) -> dict:
        """``{"ram"|"flash"|"macs": Fit}`` for each limit of ``budget``."""
        if self.budget is None:
            return {}
        return self.budget.check(ram=self.arena.bytes, flash=self.flash_bytes, macs=self.macs)

    @property
    def fits(self) -> bool:
        """True when every limit of the budget is met (and when there is no budget)."""
        return all(f.fits for f in self.resources.values())

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(inputs=[t.to_dict() for t in self.inputs], outputs=[t.to_dict() for t in self.outputs],
                    arena=self.arena.to_dict(),
                    compile=self.compile and self.compile.to_dict(), budget=self.budget and self.budget.get_config(),
                    resources={name: fit.to_dict() for name, fit in self.resources.items()}, fits=self.fits)
        return data

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __repr__(self) -> str:
        fit = "" if self.budget is None else f", fits={self.fits}"
        latency = "" if self.latency_ms is None else f", latency_ms={self.latency_ms:.3f}"
        return (f"TFLMReport(arena={self.arena.bytes:,} B, flash_bytes={self.flash_bytes:,}, "
                f"ops={sum(self.ops.values())}, macs={self.macs:,}{latency}{fit})")

    def summary(self, print_fn=print) -> str:
        """The report as text; printed with ``print_fn`` unless it is None."""
        lines = [f"TFLM report: flatbuffer {self.flatbuffer_bytes:,} B, {self.macs:,} MACs",
                 f"  tensor arena {self.arena.bytes:,} B measured (head {self.arena_breakdown.get('head', 0):,} B "
                 f"activations and scratch, tail {self.arena_breakdown.get('tail', 0):,} B persistent; "
                 f"{len(self.arena.probes)} probes)",
                 "  ops: " + ", ".join(f"{op} x{n}" for op, n in self.ops.items())]
        for kind, tensors in (("input", self.inputs), ("output", self.outputs)):
            lines += [f"  {kind} {list(t.shape)} {t.dtype}" + ("" if t.scale is None else
                      f", scale {t.scale:.6g}, zero point {t.zero_point}") for t in tensors]
        if self.latency_ms is not None:
            lines.append(f"  host latency {self.latency_ms:.3f} ms per invoke (median of {self.latency_runs})")
        if self.tflite_max_abs_diff is not None:
            exact = "bit-exact" if self.tflite_max_abs_diff == 0 else (
                f"max |diff| {self.tflite_max_abs_diff} steps in {self.tflite_mismatches} output values")
            lines.append(f"  TFLM vs tf.lite.Interpreter on {self.samples} inputs: {exact}")
        if self.keras_top1_agreement is not None:
            lines.append(f"  top-1 agreement with the Keras float model: {100 * self.keras_top1_agreement:.1f}%")
        if self.int8_accuracy is not None:
            float_part = "" if self.float_accuracy is None else f", Keras float {100 * self.float_accuracy:.1f}%"
            lines.append(f"  accuracy: int8 on TFLM {100 * self.int8_accuracy:.1f}%{float_part}")
        compiled = self.compile is not None and self.compile.compiled
        failed = "" if self.compile is None or compiled else f"; not compiled: {self.compile.reason_line}"
        lines.append(f"  flash {self.flash_bytes:,} B ({'compiled for Cortex-M4' if compiled else 'flatbuffer'}{failed})")
        if self.budget is not None:
            lines.append(f"  budget {self.board or self.budget}: " + ("fits" if self.fits else "DOES NOT FIT"))
            for name, fit in self.resources.items():
                unit = UNITS[name]
                lines.append(f"    {name:<5} {fit.used:>12,}{unit} of {fit.limit:>12,}{unit}  headroom "
                             f"{fit.headroom:,}{unit}" + ("" if fit.fits else "  OVER"))
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text
