"""The TFLM runtime in subprocesses: the minimal arena, outputs, latency; `verify` -> `TFLMReport`."""
