"""The least pruning that fits a `Budget`: searched by prediction, then measured on TFLM."""
