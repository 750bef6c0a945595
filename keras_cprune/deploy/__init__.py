"""The Keras graph lowered to TFLite ops in the converter's order; predicted TFLM arena and flash."""
