"""tflm_export: int8 TFLite export for TensorFlow Lite Micro, verified on the real runtime.

`convert` (int8 flatbuffer), `verify` (TFLM in a subprocess -> `TFLMReport`), `write_sources`
(firmware C++ sources), `compile_check` (arm-none-eabi), `export` (all of it), `Budget`, `BOARDS`.
"""
from tflm_export.boards import BOARDS, Board, board_budget
from tflm_export.budget import Budget, Fit, parse_size
from tflm_export.convert import convert
from tflm_export.export import export
from tflm_export.firmware.compile import CompileResult, compile_check
from tflm_export.micro.flatbuffer import ModelInfo, TensorInfo, read_model
from tflm_export.micro.planner import predict_arena_from_tflite
from tflm_export.runtime.report import TFLMReport
from tflm_export.arena import ArenaFigure
from tflm_export.runtime.runner import find_min_arena
from tflm_export.firmware.sources import write_sources
from tflm_export.runtime.verify import verify

__all__ = ["convert", "verify", "write_sources", "compile_check", "export", "find_min_arena", "read_model",
           "predict_arena_from_tflite",
           "Budget", "Fit", "parse_size", "BOARDS", "Board", "board_budget", "TFLMReport", "CompileResult",
           "ArenaFigure", "ModelInfo", "TensorInfo"]
