"""export(): convert -> verify on TFLite Micro -> firmware sources -> Arm compile check, in one call."""
from __future__ import annotations

import dataclasses
import os

from .convert import convert
from .firmware import compile_check
from .report import TFLMReport
from .sources import atomic_dir, check_out_dir, render, write_files
from .verify import verify


def export(model, representative_data, out_dir: str, *, budget=None, board=None, test_inputs=None, labels=None,
           name: str = "model", io_dtype: str = "int8", overwrite: bool = False, latency_runs: int = 20) -> TFLMReport:
    """Export ``model`` for TFLite Micro into ``out_dir`` and return its `TFLMReport`.

    The folder gets ``{name}_data.h/.cc``, ``{name}_settings.h``, ``op_resolver.h``,
    ``{name}.tflite`` and ``report.json`` (with the compiled flash size when arm-none-eabi-g++ is
    installed); it appears only once everything succeeded. ``budget``/``board``, ``test_inputs``
    and ``labels`` are passed to `verify`; ``keras_model`` is ``model``.
    """
    check_out_dir(out_dir, overwrite)  # fail before the slow stages
    tflite = convert(model, representative_data, io_dtype=io_dtype)
    report = verify(tflite, test_inputs=test_inputs, labels=labels, keras_model=model, budget=budget, board=board,
                    latency_runs=latency_runs)
    with atomic_dir(out_dir, overwrite) as staging:
        write_files(staging, tflite, render(tflite, report, name), name)
        compiled = compile_check(staging, name)
        report = dataclasses.replace(report, compile=compiled, flash_bytes=compiled.flash_bytes or report.flash_bytes)
        with open(os.path.join(staging, "report.json"), "w") as f:
            f.write(report.to_json(indent=2) + "\n")
    return report
