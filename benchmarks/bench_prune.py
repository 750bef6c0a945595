"""prune() time next to the floor clone_model() + set_weights() of the same model, same run.

Target: prune() <= 1.5x that floor. "first s" is the first prune of a freshly built model: what a
user's call costs (the warm-up the medians skip).
    python benchmarks/bench_prune.py
"""
import time

import keras

from _common import APPLICATIONS, application, machine, median_seconds
from keras_cprune import prune


def main() -> None:
    print(f"machine: {machine()}, keras {keras.__version__}")
    print(f"{'model':<16}{'first s':>9}{'prune s':>9}{'floor s':>9}{'ratio':>8}")
    worst = 0.0
    for name in APPLICATIONS:
        model = application(name)
        weights = model.get_weights()

        def floor():
            keras.models.clone_model(model).set_weights(weights)

        start = time.perf_counter()
        prune(model, "PA", 0.5)
        t_first = time.perf_counter() - start
        t_prune = median_seconds(lambda: prune(model, "PA", 0.5), repeats=2)
        t_floor = median_seconds(floor, repeats=2)
        worst = max(worst, t_prune / t_floor)
        print(f"{name:<16}{t_first:>9.2f}{t_prune:>9.2f}{t_floor:>9.2f}{t_prune / t_floor:>8.2f}")
    print(f"worst ratio {worst:.2f} (target <= 1.5): {'PASS' if worst <= 1.5 else 'FAIL'}")


if __name__ == "__main__":
    main()
