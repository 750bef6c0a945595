"""analyze() time next to keras.models.clone_model() time on the same model, same run.

Target: analyze() <= 0.1x clone time (it is graph arithmetic, no TF ops).
    python benchmarks/bench_analyze.py
"""
import keras

from _common import APPLICATIONS, application, machine, median_seconds
from keras_cprune import analyze


def main() -> None:
    print(f"machine: {machine()}, keras {keras.__version__}")
    print(f"{'model':<16}{'analyze s':>11}{'clone s':>10}{'ratio':>8}")
    worst = 0.0
    for name in APPLICATIONS:
        model = application(name)
        t_analyze = median_seconds(lambda: analyze(model))
        t_clone = median_seconds(lambda: keras.models.clone_model(model), repeats=1)
        worst = max(worst, t_analyze / t_clone)
        print(f"{name:<16}{t_analyze:>11.4f}{t_clone:>10.3f}{t_analyze / t_clone:>8.3f}")
    print(f"worst ratio {worst:.3f} (target <= 0.1): {'PASS' if worst <= 0.1 else 'FAIL'}")


if __name__ == "__main__":
    main()
