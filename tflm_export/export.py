"""export(): convert -> verify on TFLM -> firmware sources -> Arm compile check, in one call."""
from __future__ import annotations

import dataclasses
import os

from .convert import convert
from .firmware import compile_check
from .sources import atomic_dir, render
from .verify import resources, verify


def export(model, representative_data, out_dir: str, *, budget=None, board=None, test_inputs=None, labels=None,
           name: str = "model", io_dtype: str = "int8", overwrite: bool = False, latency_runs: int = 20):
    """Export ``model`` for TFLite Micro into ``out_dir``; return the `TFLMReport`.

    The folder gets ``{name}.tflite``, ``{name}_data.h/.cc``, ``{name}_settings.h``,
    ``op_resolver.h`` and ``report.json``; it appears only once everything succeeded.
    """
    tflite = convert(model, representative_data, io_dtype=io_dtype)
    report = verify(tflite, test_inputs=test_inputs, labels=labels, keras_model=model, latency_runs=latency_runs)
    with atomic_dir(out_dir, overwrite) as staging:
        for file_name, text in render(tflite, report, name).items():
            with open(os.path.join(staging, file_name), "w") as f:
                f.write(text)
        compiled = compile_check(staging, name)
        flash = compiled.get("flash_bytes", len(tflite))
        report = dataclasses.replace(report, flash_bytes=flash, compile=compiled, resources=resources(
            report.arena_bytes, flash, _macs(model), budget, board))
        with open(os.path.join(staging, "report.json"), "w") as f:
            f.write(report.to_json(indent=2) + "\n")
        with open(os.path.join(staging, f"{name}.tflite"), "wb") as f:
            f.write(tflite)
    return report


def _macs(model) -> int:
    from keras_cprune.complexity import analyze

    return analyze(model).macs
