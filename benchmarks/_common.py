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


def git_version() -> str:
    """Short hash of the checked-out commit, "+dirty" when tracked files differ from it; "unknown" outside git."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=root).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def t_interval(values) -> tuple[float, float]:
    """Mean and half-width of the two-sided 95% Student-t interval of ``values`` (n >= 2; half-width nan for n = 1)."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, float("nan")
    if n - 1 in T_975:
        t = T_975[n - 1]
    else:
        from scipy.stats import t as student_t

        t = float(student_t.ppf(0.975, n - 1))
    return mean, t * statistics.stdev(values) / n ** 0.5


def write_json(path: str, record: dict) -> None:
    """Write one result atomically (an interrupted run leaves no file, so it runs again); numpy
    scalars as numbers."""
    import json

    tmp = path + ".part"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    os.replace(tmp, path)


def read_results(folder: str) -> list:
    """Every JSON result file of ``folder``, in file-name order."""
    import glob
    import json

    results = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        with open(path) as f:
            results.append(json.load(f))
    return results


def emit(text: str, target: str) -> None:
    """Print ``text`` (``target`` "-") or write it to the file ``target``."""
    if target == "-":
        print(text)
        return
    with open(target, "w") as f:
        f.write(text + "\n")
