"""Shared helpers of the benchmark scripts."""
from __future__ import annotations

import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

APPLICATIONS = ("ResNet50", "MobileNetV2", "EfficientNetB0", "DenseNet121")


def application(name: str, size: int = 224):
    import keras

    return getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3))


def median_seconds(fn, repeats: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
