"""The public workflow on one Keras backend, run by tests/test_backends.py in its own interpreter
(``KERAS_BACKEND`` is read once, at import): ``python tests/backend_checks.py MODEL.keras OUT.json [--tuner]``
(``--tuner``: also one `BoardFitTuner` trial, 30-40 s).

Each step asserts what it can check alone (equivalence, budgets met on TFLM, channels stripped) and
writes to OUT.json what the test compares across backends (analyze totals, the plan's dict).
"""
import json
import os
import sys
import time

import keras
import numpy as np

import keras_cprune
from keras_cprune import (Budget, BoardFitTuner, ConstantRatio, Distiller, analyze, apply_plan, plan_pruning,
                          plan_to_budget, prune_during_training, strip, tradeoff)
from keras_cprune.training.callbacks import ComplexityLogger
from keras_cprune.pruning.context import PruneContext
from keras_cprune.pruning.rebuild import rebuild

MODE, RATIO, OPTIONS = "MA", 0.5, {"rule": "all"}


def predict(model, x):
    return np.asarray(model.predict(x, verbose=0))


def check_analyze(model) -> dict:
    report = analyze(model)
    return {"params": report.params, "macs": report.macs, "peak_act_bytes_int8": report.peak_act_bytes_int8}


def check_plan(model, x) -> dict:
    """`plan_pruning` + `apply_plan` equal the original with the removed channels zeroed."""
    plan = plan_pruning(model, MODE, RATIO, **OPTIONS)
    pruned = apply_plan(model, plan)
    context = PruneContext.of(model)
    same_plan, removed = context.plan(MODE, RATIO, **OPTIONS)
    masked = rebuild(model, context.deps, removed, weights="mask")
    np.testing.assert_allclose(predict(pruned, x), predict(masked, x), rtol=1e-5, atol=1e-5)
    assert same_plan.to_dict() == plan.to_dict()
    assert pruned.count_params() == plan.after.params < plan.before.params
    return plan.to_dict()


def check_budget(model) -> dict:
    """`plan_to_budget` (measured on TFLM, the default) to 80% of the predicted arena; `apply_plan`."""
    before = plan_pruning(model, MODE, 0.0).before
    ram = int(before.arena.bytes * 0.8)
    plan = plan_to_budget(model, Budget(ram=ram), mode=MODE, verbose=0)
    measured = plan.after.measured_arena
    assert measured is not None and measured.source == "measured", plan.after
    assert measured.bytes <= ram, (measured, ram)
    assert apply_plan(model, plan).count_params() == plan.after.params
    return {"ram": ram, "measured_arena": measured.bytes, "predicted_arena": plan.after.arena.bytes}


def check_training(model, x, y, log_dir) -> dict:
    """`prune_during_training` + ``fit`` (with `ComplexityLogger` writing TensorBoard scalars) + `strip`."""
    masked, step = prune_during_training(model, "FA", schedule=ConstantRatio(0.5, frequency=2), rule="all")
    masked.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logger = ComplexityLogger(log_dir=log_dir)
    history = masked.fit(x, y, batch_size=8, epochs=1, callbacks=[step, logger], verbose=0)
    small = strip(masked)
    np.testing.assert_allclose(predict(small, x), predict(masked, x), rtol=1e-4, atol=1e-4)
    assert small.count_params() < model.count_params()
    assert history.history["params"] == [model.count_params()]
    assert any(name.startswith("events") for name in os.listdir(log_dir)), os.listdir(log_dir)
    return {"stripped_params": small.count_params(), "plan_after_params": step.plan.after.params}


def check_distiller(model, x, y) -> dict:
    student = keras_cprune.prune(model, "PA", 0.5)
    before = [w.copy() for w in student.get_weights()]
    distiller = Distiller(student=student, teacher=model, alpha=0.5, temperature=2.0)
    distiller.compile("adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = distiller.fit(x, y, batch_size=8, epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, student.get_weights()))
    return {"distill_loss": float(loss)}


def check_tuner(model, x, y, directory) -> dict:
    """One `BoardFitTuner` trial: a pruned variant predicted to fit 90% of the arena, trained."""
    ram = int(plan_pruning(model, MODE, 0.0).before.arena.bytes * 0.9)
    model = keras.models.clone_model(model)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    tuner = BoardFitTuner(model, budget=Budget(ram=ram), headroom=(0.9, 1.0), max_trials=1, seed=1,
                          objective="val_loss", directory=directory, overwrite=True)
    tuner.search(x, y, validation_data=(x[:8], y[:8]), epochs=1, batch_size=8, verbose=0)
    (point,) = tuner.points()
    assert point.arena_bytes <= ram, (point, ram)
    return {"ram": ram, "arena_bytes": point.arena_bytes}


def main(model_path: str, out_path: str, *flags: str) -> None:
    times, results = {}, {"backend": keras.backend.backend()}
    model = keras.saving.load_model(model_path)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (32,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    y = rng.integers(0, model.outputs[0].shape[-1], 32)
    steps = {"analyze": lambda: check_analyze(model),
             "plan": lambda: check_plan(model, x),
             "budget": lambda: check_budget(model),
             "training": lambda: check_training(model, x, y, os.path.join(os.path.dirname(out_path), "logs")),
             "distiller": lambda: check_distiller(model, x, y),
             "tradeoff": lambda: tradeoff(model, modes=("PA", "MA"), ratios=(0.0, 0.5)).to_dict()}
    if "--tuner" in flags:
        steps["tuner"] = lambda: check_tuner(model, x, y, os.path.join(os.path.dirname(out_path), "tuner"))
    for name, step in steps.items():
        start = time.perf_counter()
        results[name] = step()
        times[name] = round(time.perf_counter() - start, 1)
    results["seconds"] = times
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
