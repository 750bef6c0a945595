"""tflm_export: int8 TFLite export for TensorFlow Lite Micro, verified on the real runtime.

`convert` (int8 flatbuffer), `verify` (TFLM in a subprocess -> `TFLMReport`), `write_sources`
(firmware C++ sources), `compile_check` (arm-none-eabi), `export` (all of it), `Budget`, `BOARDS`.
"""
from .boards import BOARDS, Board, board_budget
from .budget import Budget, Fit, parse_size
from .convert import convert
from .export import export
from .firmware import CompileResult, compile_check
from .flatbuffer import ModelInfo, TensorInfo, read_model
from .report import TFLMReport
from .runtime import ArenaSearch, find_min_arena
from .sources import write_sources
from .verify import verify

__all__ = ["convert", "verify", "write_sources", "compile_check", "export", "find_min_arena", "read_model",
           "Budget", "Fit", "parse_size", "BOARDS", "Board", "board_budget", "TFLMReport", "CompileResult",
           "ArenaSearch", "ModelInfo", "TensorInfo"]
