"""RAM budgets at 90/75/60% of each model's measured TFLM arena: does the pruned result fit when
measured, how close to the budget (headroom), how long the search takes, how many TFLM measurements.

`prune(model, "MA", budget=Budget(ram=...))` predicts in the converter's op order, then converts
its result and measures it on the TFLM runtime (the default, verify="auto"), searching on while
the measurement is over.
    python benchmarks/bench_budget.py
"""
import statistics
import time

import keras
import numpy as np

import keras_cprune.budget.fit as budget_module
from _common import machine
from keras_cprune import Budget, plan_to_budget, zoo
from keras_cprune.graph.clone import as_trained
from tflm_export import convert
from tflm_export.runtime.runner import find_min_arena


def models():
    for name, build in zoo.MLPERF_TINY.items():
        yield name, build()
    yield "MobileNetV2 a0.35 96x96", keras.applications.MobileNetV2(
        weights=None, input_shape=(96, 96, 3), alpha=0.35, classes=10, classifier_activation=None)


def counting_verifier():
    """Patch the budget search's TFLM verifier to count its measurements."""
    calls, original = [0], budget_module.tflm_verifier

    def verifier(*args, **kwargs):
        measure = original(*args, **kwargs)

        def counted(removed):
            calls[0] += 1
            return measure(removed)
        return counted

    budget_module.tflm_verifier = verifier
    return calls


def narrowest(plan) -> tuple:
    """(kept / original, producer) of the narrowest pruned producer."""
    widths = [(len(kept) / g.widths[name], name) for g in plan.groups for name, kept in g.kept.items()]
    return min(widths, default=(1.0, "-"))


def main() -> None:
    print(f"machine: {machine()}")
    print(f"{'model':<26}{'budget':>8}{'limit B':>10}{'measured B':>12}{'fits':>6}{'headroom':>10}"
          f"{'search s':>10}{'TFLM runs':>10}  narrowest kept")
    calls, results = counting_verifier(), []
    for name, model in models():
        data = np.random.default_rng(0).uniform(0, 1, (16,) + tuple(model.inputs[0].shape[1:])).astype("float32")
        full = find_min_arena(convert(as_trained(keras.models.clone_model(model)), data)).bytes
        for fraction in (0.9, 0.75, 0.6):
            limit = int(full * fraction)
            calls[0], start = 0, time.perf_counter()
            try:
                plan = plan_to_budget(model, Budget(ram=limit), mode="MA", verbose=0)
            except Exception as exc:  # a budget out of reach at the min_keep floor
                print(f"{name:<26}{fraction:>8.0%}{limit:>10,}  {type(exc).__name__}: {str(exc)[:120]}")
                continue
            seconds, measured = time.perf_counter() - start, plan.after.measured_arena.bytes
            share, layer = narrowest(plan)
            results.append((measured <= limit, (limit - measured) / limit, seconds, calls[0]))
            print(f"{name:<26}{fraction:>8.0%}{limit:>10,}{measured:>12,}{'yes' if measured <= limit else 'NO':>6}"
                  f"{100 * (limit - measured) / limit:>9.1f}%{seconds:>10.1f}{calls[0]:>10}  {share:.2f} ({layer})",
                  flush=True)
    fits = sum(r[0] for r in results)
    print(f"{fits}/{len(results)} fit when measured; median headroom {100 * statistics.median(r[1] for r in results):.1f}%"
          f" (target <= 3%); median search {statistics.median(r[2] for r in results):.1f} s; "
          f"TFLM measurements per search: max {max(r[3] for r in results)}")


if __name__ == "__main__":
    main()
