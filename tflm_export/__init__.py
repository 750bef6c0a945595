"""tflm_export: int8 TFLite export for TensorFlow Lite Micro, verified on the real runtime."""
