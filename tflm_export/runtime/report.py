"""TFLMReport: what TFLite Micro needs for an int8 model (the arena of the target's build, the host
runtime's measurement as a cross-check), and whether it fits."""
from __future__ import annotations

import json
from dataclasses import dataclass, fields

from tflm_export.arena import ArenaFigure
from tflm_export.budget import UNITS, Budget
from tflm_export.firmware.compile import CompileResult
from tflm_export.micro.planner import align
from tflm_export.micro.targets import resolve_target


@dataclass(frozen=True)
class TFLMReport:
    """What TFLite Micro needs for one int8 flatbuffer, and what the PyPI ``tflite-micro`` runtime
    (x86-64 host build) measured on it.

    ``arena`` is the one arena figure: for a ``target`` build (a board's, e.g. "cortex-m4/cmsis_nn")
    the arena that build needs, predicted by replaying its allocator (exact where
    ``arena.exact``); for ``"host"`` the host runtime's measurement. TFLM plans the input and
    output tensors inside the arena, so it is all the RAM the model needs besides the interpreter
    object, op resolver and stack (not counted). ``arena_size`` = ``arena.bytes + margin``, rounded
    up to 16, is what ``ram`` of a budget is judged on and what ``kTensorArenaSize`` reserves.
    ``host_arena`` is the host measurement, always made: ``plan_mismatch`` flags a host prediction
    that differs from it (the allocator replay the target's figure rests on missed something). On
    ``tflite_max_abs_diff``: convolutions, pooling, ADD, MUL,
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
        arena: the `ArenaFigure` of the ``target`` build: ``"predicted"`` for a Cortex-M build,
            else ``host_arena``.
        arena_breakdown: the host runtime's ``print_allocations()`` in bytes (head: planned
            activations and scratch buffers; tail: persistent data by kind).
        ops: builtin op name -> count.
        macs: multiply-accumulates per inference.
        inputs: a `TensorInfo` per input: name, shape, dtype, scale, zero_point.
        outputs: a `TensorInfo` per output.
        flash_bytes: what a budget's flash is judged on: the model (the compiled model array when
            the Arm compiler ran, ``compile``, else the flatbuffer) plus ``code_bytes``.
        code_bytes: the TFLM code and constants the model's op resolver links on the ``target``
            build (`firmware.code_size.predict_code_bytes`), or None: flash counts the model only
            (``flash="model"``, or no code table for the build).
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
        target: the TFLM build ``arena`` describes: ``"host"`` or ``"<core>/<kernels>"`` (`TARGETS`).
        margin: bytes reserved above ``arena.bytes``, included in the fit check and ``kTensorArenaSize``.
        host_arena: the host runtime's measured `ArenaFigure`: the smallest ``arena_size`` (16-byte
            steps) that allocates and invokes, and the ``(size, fits)`` probes, each in its own process.
        host_predicted_bytes: the host arena the allocator replay predicts, or None.

    Example:

    ```python
    report = tflm_export.verify(tflite_bytes, budget=Budget(ram="64KB"), target="cortex-m4/cmsis_nn", margin=256)
    report.fits, report.arena_size, report.resources["ram"].headroom
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
    target: str = "host"
    margin: int = 0
    host_arena: ArenaFigure | None = None
    host_predicted_bytes: int | None = None
    code_bytes: int | None = None

    @property
    def arena_size(self) -> int:
        """``arena.bytes + margin`` rounded up to 16: what ``ram`` is judged on and ``kTensorArenaSize``."""
        return align(self.arena.bytes + self.margin)

    @property
    def plan_mismatch(self) -> bool:
        """True when the host prediction differs from the host measurement."""
        return (self.host_arena is not None and self.host_predicted_bytes is not None
                and align(self.host_predicted_bytes) != self.host_arena.bytes)

    @property
    def resources(self) -> dict:
        """``{"ram"|"flash"|"macs": Fit}`` for each limit of ``budget``; ram is `arena_size`."""
        if self.budget is None:
            return {}
        return self.budget.check(ram=self.arena_size, flash=self.flash_bytes, macs=self.macs)

    @property
    def fits(self) -> bool:
        """True when every limit of the budget is met (and when there is no budget)."""
        return all(f.fits for f in self.resources.values())

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(inputs=[t.to_dict() for t in self.inputs], outputs=[t.to_dict() for t in self.outputs],
                    arena=self.arena.to_dict(), host_arena=self.host_arena and self.host_arena.to_dict(),
                    arena_size=self.arena_size, plan_mismatch=self.plan_mismatch, compile=self.compile and self.compile.to_dict(), budget=self.budget and self.budget.get_config(),
                    resources={name: fit.to_dict() for name, fit in self.resources.items()}, fits=self.fits)
        return data

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __repr__(self) -> str:
        fit = "" if self.budget is None else f", fits={self.fits}"
        latency = "" if self.latency_ms is None else f", latency_ms={self.latency_ms:.3f}"
        return (f"TFLMReport(arena={self.arena.bytes:,} B {self.arena.source} for {self.target}, flash_bytes={self.flash_bytes:,}, "
                f"ops={sum(self.ops.values())}, macs={self.macs:,}{latency}{fit})")

    def _arena_lines(self) -> list:
        """The arena figure, which build it describes, the margin and the host cross-check."""
        build = resolve_target(self.target).describe()
        figure = self.arena if self.target != "host" else ArenaFigure(
            self.arena.bytes, self.arena.source, self.arena_breakdown.get("head", 0), self.arena_breakdown.get("tail", 0))
        lines = [f"  tensor arena {figure.bytes:,} B {figure.source} {'on' if self.target == 'host' else 'for'} {build} (head {figure.head_bytes:,} B "
                 f"activations and scratch, tail {figure.tail_bytes:,} B persistent"
                 + ("" if figure.exact else f"; approximated: {', '.join(figure.approximated)}") + ")"]
        if self.target == "host" and self.board:
            lines.append(f"    the host figure, not {self.board}'s own TFLM build (its kernels are not modelled)")
        lines.append(f"  kTensorArenaSize {self.arena_size:,} B = arena + margin {self.margin:,} B, rounded up to 16")
        if self.host_arena is not None:
            check = f"{self.host_arena.bytes:,} B measured on the host runtime ({len(self.host_arena.probes)} probes)"
            if self.host_predicted_bytes is not None:
                check += (f", {self.host_predicted_bytes:,} B predicted: " +
                          ("MISMATCH, the allocator replay missed something" if self.plan_mismatch else "agree"))
            lines.append(f"  host cross-check: {check}")
        return lines

    def summary(self, print_fn=print) -> str:
        """The report as text; printed with ``print_fn`` unless it is None."""
        lines = [f"TFLM report: flatbuffer {self.flatbuffer_bytes:,} B, {self.macs:,} MACs", *self._arena_lines(),
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
        model = "model compiled for Cortex-M4" if compiled else "flatbuffer"
        code = "" if self.code_bytes is None else f" + TFLM code {self.code_bytes:,} B for {self.target}"
        lines.append(f"  flash {self.flash_bytes:,} B ({model}{code}{failed})")
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
