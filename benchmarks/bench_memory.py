"""Peak RSS of prune() next to the RSS of holding the model alone (each in a fresh process).

Target: process peak RSS while pruning <= 2x the process RSS holding the model alone. Also
printed, stricter: both measured above the loaded framework (TensorFlow's own ~0.5 GB excluded),
and what a plain clone_model() of the same model adds, the floor for building any new model.
    python benchmarks/bench_memory.py
"""
import json
import os
import subprocess
import sys

from _common import machine

CHILD = r"""
import json, resource, sys, gc
import keras
from keras_cprune import prune
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3))  # warm up the framework
gc.collect(); base = rss()
model = getattr(keras.applications, sys.argv[1])(weights=None, input_shape=(224, 224, 3))
held = rss()
if sys.argv[2] == "prune":
    pruned = prune(model, "PA", 0.5)
elif sys.argv[2] == "clone":
    clone = keras.models.clone_model(model)
print(json.dumps({"base": base, "held": held, "peak": rss()}))
"""


def measure(name: str, action: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", CHILD, name, action], capture_output=True, text=True, env=env,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    print(f"machine: {machine()}")
    print(f"{'model':<13}{'hold MB':>9}{'prune peak MB':>15}{'ratio':>7}"
          f"{'| above framework: model':>26}{'prune':>7}{'clone':>7}{'ratio':>7}")
    worst = 0.0
    for name in ("ResNet50", "DenseNet121"):
        hold, run, clone = measure(name, "hold"), measure(name, "prune"), measure(name, "clone")
        mb = 2 ** 20
        ratio = run["peak"] / hold["held"]
        worst = max(worst, ratio)
        model, pruned, cloned = ((d["peak"] - d["base"]) / mb for d in (hold, run, clone))
        model = (hold["held"] - hold["base"]) / mb
        print(f"{name:<13}{hold['held'] / mb:>9.0f}{run['peak'] / mb:>15.0f}{ratio:>7.2f}"
              f"{model:>26.1f}{pruned:>7.1f}{cloned:>7.1f}{pruned / model:>7.2f}")
    print(f"worst process ratio {worst:.2f} (target <= 2): {'PASS' if worst <= 2 else 'FAIL'}")


if __name__ == "__main__":
    main()
