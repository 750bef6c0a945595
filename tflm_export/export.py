"""export(): convert -> verify on TFLite Micro -> firmware sources -> Arm compile check, in one call."""
from __future__ import annotations

import dataclasses
import os

from tflm_export.boards import resolve_board
from tflm_export.budget import parse_margin
from tflm_export.convert import convert
from tflm_export.firmware.compile import compile_check
from tflm_export.runtime.report import TFLMReport
from tflm_export.firmware.sources import atomic_dir, check_out_dir, render, write_files
from tflm_export.runtime.verify import verify


def export(model, representative_data, out_dir: str, *, budget=None, board=None, target=None, margin=0,
           flash: str = "image", test_inputs=None, labels=None,
           name: str = "model", io_dtype: str = "int8", per_channel_dense: bool = True, overwrite: bool = False,
           latency_runs: int = 20) -> TFLMReport:
    """Export ``model`` for TFLite Micro into ``out_dir``: convert, verify, write sources, compile.

    The folder gets ``{name}_data.h/.cc``, ``{name}_settings.h``, ``op_resolver.h``,
    ``{name}.tflite`` and ``report.json`` (with the compiled flash size when arm-none-eabi-g++ is
    installed); it appears only once everything succeeded. ``kTensorArenaSize`` is exactly the
    figure ``report.fits`` was judged on: the ``target`` build's arena + ``margin`` (`verify`).

    Args:
        model: a Keras model.
        representative_data: inputs that calibrate the int8 conversion, shape ``(N, *input_shape)``.
        out_dir: the output folder; it must not exist unless ``overwrite``.
        budget: a `Budget` the arena, flash and MACs are checked against (``report.fits``), or None.
        board: a name of `BOARDS` (or a `Board`): its budget and target unless ``budget``/``target`` are given.
        target: the TFLM build the arena is for (``"cortex-m4/cmsis_nn"``, see `verify`), or None.
        margin: bytes reserved above the arena, in the fit check and ``kTensorArenaSize``. Default 0.
        flash: ``"image"``: flash counts the model and the TFLM code the op resolver links on the
            target build (where known); ``"model"``: the model only (see `verify`).
        test_inputs: inputs run on TFLM to compare it with tf.lite and ``model``, or None.
        labels: labels of ``test_inputs``, for the int8 and float accuracies, or None.
        name: the C++ names' and files' stem.
        io_dtype: type of the model's input and output tensors: "int8", "uint8" or "float32" (see `convert`).
        per_channel_dense: False quantizes Dense weights per tensor: a smaller arena (see `convert`).
        overwrite: replace an existing ``out_dir``.
        latency_runs: invokes timed on the host.

    Returns:
        The `TFLMReport`, also written as ``report.json``.

    Raises:
        OutputPathError: ``out_dir`` exists (without ``overwrite``) or cannot be written.
        BudgetError: an unknown board or target, or a bad ``margin``.
        ConversionError: the int8 conversion failed.
        TFLMRuntimeError: the TFLM runtime failed on the model.

    Example:

    ```python
    report = tflm_export.export(model, x_train[:200], "fw", board="nano33ble", test_inputs=x_test)
    report.summary()
    ```
    """
    check_out_dir(out_dir, overwrite)  # fail before the slow stages, as on a bad board, target or margin
    resolve_board(budget, board, target)
    parse_margin(margin)
    tflite = convert(model, representative_data, io_dtype=io_dtype, per_channel_dense=per_channel_dense)
    report = verify(tflite, test_inputs=test_inputs, labels=labels, keras_model=model, budget=budget, board=board,
                    target=target, margin=margin, flash=flash, latency_runs=latency_runs)
    with atomic_dir(out_dir, overwrite) as staging:
        write_files(staging, tflite, render(tflite, report, name), name)
        compiled = compile_check(staging, name)
        model_flash = compiled.flash_bytes or report.flatbuffer_bytes
        report = dataclasses.replace(report, compile=compiled, flash_bytes=model_flash + (report.code_bytes or 0))
        with open(os.path.join(staging, "report.json"), "w") as f:
            f.write(report.to_json(indent=2) + "\n")
    return report
