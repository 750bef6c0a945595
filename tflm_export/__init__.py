"""tflm_export: int8 TFLite export for TensorFlow Lite Micro, verified on the real runtime.

`convert` (int8 flatbuffer), `verify` (TFLM in a subprocess -> `TFLMReport`), `write_sources`
(firmware C++ sources), `compile_check` (arm-none-eabi), `export` (all of it), `Budget`, `BOARDS`.
"""
from .boards import BOARDS, Board, board_budget
from .budget import Budget, parse_size
from .convert import convert
from .export import export
from .firmware import compile_check
from .report import Fit, TFLMReport
from .sources import write_sources
from .verify import verify

__all__ = ["convert", "verify", "write_sources", "compile_check", "export", "Budget", "parse_size", "BOARDS",
           "Board", "board_budget", "Fit", "TFLMReport"]
