"""Flash of the TFLM code a firmware image links for a model's ops, per Cortex-M build.

``code_bytes.json`` (made by scripts/cortexm/code_size.py from the harness's libraries) holds, per
build, the bytes of an image whose op resolver registers no op, and the code and constant symbols
(with their sizes) each op's registration adds to it. Ops share code (quantization helpers,
CMSIS-NN support functions): an op set's image adds the *union* of its ops' symbols, each once.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache

from tflm_export.errors import BudgetError

_TABLE = os.path.join(os.path.dirname(__file__), "code_bytes.json")


@lru_cache(maxsize=None)
def _table() -> dict:
    with open(_TABLE) as f:
        return json.load(f)


def code_builds() -> tuple:
    """The builds ("cortex-m4/cmsis_nn", ...) whose code sizes are known."""
    return tuple(sorted(_table()))


def predict_code_bytes(ops, build: str) -> int:
    """Flash bytes of TFLM code and constants in an image registering exactly ``ops`` on ``build``.

    Args:
        ops: TFLite builtin op names, e.g. ``read_model(tflite).op_counts``.
        build: a target name of `code_builds`, e.g. ``"cortex-m4/cmsis_nn"``.

    Returns:
        The image's ``text + data`` without the model array (add ``len(tflite)`` for the image).

    Raises:
        BudgetError: ``build`` has no code table, or an op was never measured on it (the
            message names them and how to measure them).
    """
    table = _table().get(build)
    if table is None:
        raise BudgetError(f"No firmware code sizes for build {build!r}; known: {', '.join(code_builds())}. "
                          "Measure it with scripts/cortexm/code_size.py table (docs/CORTEXM.md), or count "
                          "the model's flash only.")
    missing = sorted(op for op in ops if op not in table["ops"])
    if missing:
        raise BudgetError(f"No code size measured for op(s) {', '.join(missing)} on {build}: add them with "
                          "scripts/cortexm/code_size.py table, or count the model's flash only.")
    symbols = set().union(*(table["ops"][op] for op in ops)) if ops else set()
    return table["base"] + sum(table["symbol_bytes"][i] for i in symbols)


def code_bytes(ops, build: str, flash: str = "image") -> int | None:
    """`predict_code_bytes` where ``flash="image"`` and the build's code sizes are known, else None
    (flash counts the model only).

    Raises:
        BudgetError: ``flash`` is not ``"image"`` or ``"model"``.
    """
    if flash not in ("image", "model"):
        raise BudgetError(f"Expected flash= to be 'image' (model + TFLM code) or 'model'. Received: flash={flash!r}.")
    if flash == "model" or build not in _table() or any(op not in _table()[build]["ops"] for op in ops):
        return None
    return predict_code_bytes(ops, build)
