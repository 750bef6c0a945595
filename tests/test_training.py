"""Gradual pruning during fit: schedules, masked training, strip, checkpoints, QAT guard, MirroredStrategy."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_cprune import analyze
from keras_cprune.training.callbacks import FilterPruningStep
from keras_cprune.graph.dependency import build_dependencies
from keras_cprune.errors import ModelError, ModelFileError, PruningError
from keras_cprune.graph.reader import read_graph
from keras_cprune.training.qat import quantize_aware
from keras_cprune.pruning.rebuild import weight_channel_units
from keras_cprune.training.masks import strip, zeroed_units
from keras_cprune.training.schedules import ConstantRatio, PolynomialDecay, deserialize_schedule, serialize_schedule
from keras_cprune.training.workflow import load_checkpoint, prune_during_training, save_checkpoint
from models import randomize, residual, vgg

BUILDERS = {"vgg": lambda: vgg(keras, input_shape=(16, 16, 1), widths=(8, 16)), "residual": lambda: residual(keras)}


def data(model, n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    return x, rng.integers(0, model.outputs[0].shape[-1], n)


def fit(model, callbacks, epochs=1, optimizer="adam", batch_size=8):
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(model)
    return model.fit(x, y, batch_size=batch_size, epochs=epochs, callbacks=callbacks, shuffle=False, verbose=0)


def test_polynomial_decay_hand_checked():
    schedule = PolynomialDecay(0.0, 0.5, begin_step=0, end_step=100, power=3, frequency=10)
    # 0.5 + (0 - 0.5) * (1 - step / 100) ** 3
    expected = {0: 0.0, 10: 0.5 - 0.5 * 0.729, 50: 0.4375, 100: 0.5, 150: 0.5}
    assert {s: schedule.ratio_at(s) for s in expected} == pytest.approx(expected)
    assert [s for s in range(-5, 130) if schedule.prunes_at(s)] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    late = PolynomialDecay(0.2, 0.6, begin_step=5, end_step=12, power=1, frequency=4)
    assert [s for s in range(20) if late.prunes_at(s)] == [5, 9, 12]  # the end step always re-plans
    assert late.ratio_at(0) == late.ratio_at(5) == 0.2 and late.ratio_at(9) == pytest.approx(0.2 + 0.4 * 4 / 7)


def test_constant_ratio_steps():
    schedule = ConstantRatio(0.3, begin_step=4, frequency=3)
    assert [s for s in range(14) if schedule.prunes_at(s)] == [4, 7, 10, 13]
    assert schedule.ratio_at(7) == 0.3


@pytest.mark.parametrize("schedule", [PolynomialDecay(0.1, 0.7, 3, 40, power=2, frequency=5), ConstantRatio(0.25, 2, 7)])
def test_schedule_config_roundtrip(schedule):
    assert type(schedule).from_config(schedule.get_config()) == schedule
    assert deserialize_schedule(json.loads(json.dumps(serialize_schedule(schedule)))) == schedule
    step = FilterPruningStep("fa", schedule, rule="all", unit="epoch", min_filters=2)
    again = FilterPruningStep.from_config(json.loads(json.dumps(step.get_config())))
    assert again.get_config() == step.get_config() and again.mode == "FA" and again.schedule == schedule


@pytest.mark.parametrize("make, match", [
    (lambda: PolynomialDecay(0.0, 1.0, 0, 10), "final_ratio"),
    (lambda: PolynomialDecay(0.0, 0.5, 10, 10), "end_step"),
    (lambda: ConstantRatio(0.5, frequency=0), "frequency"),
    (lambda: ConstantRatio(0.5, begin_step=-1), "begin_step"),
    (lambda: deserialize_schedule({"class_name": "Cosine", "config": {}}), "Cosine"),
    (lambda: FilterPruningStep("PA", 0.5), "PruningSchedule"),
    (lambda: FilterPruningStep("PA", ConstantRatio(0.5), unit="batch"), "unit"),
    (lambda: prune_during_training(BUILDERS["vgg"](), "XA", schedule=ConstantRatio(0.5)), "mode"),
    (lambda: prune_during_training(BUILDERS["vgg"](), schedule=ConstantRatio(0.5), importance="l3"), "l3"),
])
def test_bad_arguments(make, match):
    with pytest.raises(PruningError, match=match):
        make()


@pytest.mark.parametrize("arch", BUILDERS)
def test_gradual_pruning_follows_schedule_and_strips_exactly(arch):
    model = BUILDERS[arch]()
    randomize(model, seed=1)
    original = [w.copy() for w in model.get_weights()]
    masked, step = prune_during_training(model, "PA", schedule=PolynomialDecay(0.0, 0.75, 0, 4, frequency=2),
                                         rule="all")
    fit(masked, [step])  # 3 batches: re-plans at steps 0 (ratio 0) and 2 (0.75 - 0.75 * 0.5 ** 3)
    deps = build_dependencies(read_graph(masked))
    assert step.step == 3 and step.plan.ratio == pytest.approx(0.65625)
    middle = zeroed_units(deps)
    assert len(middle) == sum(g.channels - g.kept_channels for g in step.plan.groups) > 0
    assert strip(masked).count_params() == step.plan.after.params
    fit(masked, [step])  # steps 3..5: re-plans at 4, the end step (ratio 0.75)
    assert step.step == 6 and step.plan.ratio == 0.75 and middle < zeroed_units(deps)
    stripped = strip(masked)
    assert stripped.count_params() == analyze(stripped).params == step.plan.after.params < model.count_params()
    x, _ = data(model, n=5, seed=7)
    np.testing.assert_allclose(stripped.predict(x, verbose=0), masked.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert all(np.array_equal(a, b) for a, b in zip(original, model.get_weights()))  # input model untouched


def removed_slots(model, removed):
    """Values of every weight slot of the ``removed`` units (all zero while they are masked)."""
    deps = build_dependencies(read_graph(model))
    values = []
    for _, weight, axes in weight_channel_units(deps):
        value = np.asarray(weight.numpy())
        for axis, units in axes.items():
            values.append(np.take(value, np.flatnonzero(np.isin(units, list(removed))), axis=axis).ravel())
    return np.concatenate(values)


def test_removed_filters_stay_zero_under_further_training():
    model = BUILDERS["vgg"]()
    randomize(model)
    masked, step = prune_during_training(model, "MA", schedule=ConstantRatio(0.5, begin_step=3, frequency=1000))
    optimizer = keras.optimizers.Adam(0.05)
    fit(masked, [step], epochs=3, optimizer=optimizer)  # pruned at step 3, when Adam has momentum
    removed = zeroed_units(build_dependencies(read_graph(masked)))
    assert len(removed) == sum(g.channels - g.kept_channels for g in step.plan.groups) > 0
    assert not removed_slots(masked, removed).any()
    assert strip(masked).count_params() == step.plan.after.params
    x, y = data(masked)
    masked.fit(x, y, batch_size=8, verbose=0)  # without the callback, the optimizer's momentum revives them
    assert removed_slots(masked, removed).any()


def test_epoch_unit():
    model = BUILDERS["residual"]()
    randomize(model)
    masked, step = prune_during_training(model, "FA", schedule=PolynomialDecay(0.0, 0.5, 0, 2, frequency=1),
                                         unit="epoch", rule="all")
    history = fit(masked, [step], epochs=2)
    assert step.step == 2 and step.plan.ratio == pytest.approx(0.4375) and len(history.history["loss"]) == 2
    fit(masked, [step])
    assert step.plan.ratio == 0.5 and strip(masked).count_params() == step.plan.after.params


def test_checkpoint_resume_matches_uninterrupted_training(tmp_path):
    keras.utils.set_random_seed(3)
    model = BUILDERS["vgg"]()
    schedule = PolynomialDecay(0.0, 0.5, 0, 5, frequency=2)
    runs = {}
    for name in ("straight", "resumed"):
        masked, step = prune_during_training(model, "PA", schedule=schedule, rule="all")
        fit(masked, [step])
        if name == "resumed":
            path = tmp_path / "ckpt.keras"
            save_checkpoint(masked, step, path)
            assert json.loads((tmp_path / "ckpt.pruning.json").read_text())["step"] == 3
            masked, step = load_checkpoint(path)
            assert step.step == 3 and step.schedule == schedule and step.plan is None
            masked.fit(*data(masked), batch_size=8, epochs=2, initial_epoch=1, callbacks=[step], shuffle=False,
                       verbose=0)
        else:
            masked.fit(*data(masked), batch_size=8, epochs=1, callbacks=[step], shuffle=False, verbose=0)
        runs[name] = (masked, step)
    (straight, a), (resumed, b) = runs["straight"], runs["resumed"]
    assert a.step == b.step == 6 and a.plan.ratio == b.plan.ratio == 0.5 and a.plan.groups == b.plan.groups
    for wa, wb in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    assert strip(resumed).count_params() == b.plan.after.params


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(ModelFileError, match="save_checkpoint"):
        load_checkpoint(tmp_path / "missing.keras")
    model = BUILDERS["vgg"]()
    masked, step = prune_during_training(model, schedule=ConstantRatio(0.5), importance=lambda layer: np.arange(
        layer.weights[0].shape[-1], dtype=float))
    fit(masked, [step])
    save_checkpoint(masked, step, tmp_path / "c.keras")
    with pytest.raises(PruningError, match="callable importance"):
        load_checkpoint(tmp_path / "c.keras")
    _, again = load_checkpoint(tmp_path / "c.keras", importance="l2")
    assert again.config.importance == "l2" and again.step == 3


@pytest.mark.parametrize("module", ["os", "keras.src"])
def test_load_checkpoint_imports_only_keras(tmp_path, module):
    masked, step = prune_during_training(BUILDERS["vgg"](), schedule=ConstantRatio(0.5))
    save_checkpoint(masked, step, tmp_path / "c.keras")
    state_file = tmp_path / "c.pruning.json"
    state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "keras": module}))
    with pytest.raises(ModelFileError, match=rf"c\.pruning\.json.*keras is {module!r}, expected one of "
                                             r"\('keras', 'tf_keras'\).*save_checkpoint"):
        load_checkpoint(tmp_path / "c.keras")


def test_strip_without_masked_channels_keeps_the_model():
    model = BUILDERS["residual"]()
    randomize(model)
    stripped = strip(model)
    assert stripped.count_params() == model.count_params()
    x, _ = data(model, n=3)
    np.testing.assert_allclose(stripped.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_quantize_aware_rejects_keras3_models():
    with pytest.raises(ModelError, match="tf_keras.*TF_USE_LEGACY_KERAS=1"):
        quantize_aware(BUILDERS["vgg"]())


MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from keras_cprune import analyze, prune
from keras_cprune.training.callbacks import ComplexityLogger
from keras_cprune import ConstantRatio, prune_during_training, strip
from models import randomize, vgg
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(0)
x, y = rng.normal(size=(32, 16, 16, 1)).astype("float32"), rng.integers(0, 10, 32)
with strategy.scope():
    model = vgg(keras, input_shape=(16, 16, 1), widths=(8, 16))
    randomize(model)
    pruned = prune(model, "PA", 0.5, rule="all")
    masked, step = prune_during_training(model, "PA", schedule=ConstantRatio(0.5, 0, 100), rule="all")
    masked.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = masked.fit(x, y, batch_size=8, epochs=2, callbacks=[step, ComplexityLogger()], verbose=0)
    stripped = strip(masked)
assert strategy.num_replicas_in_sync == 2
kernel = masked.get_layer("conv0").kernel.value
replicas = [v.numpy() for v in kernel.values]
assert len(replicas) == 2 and np.array_equal(replicas[0], replicas[1])
assert (np.abs(replicas[0]).sum(axis=(0, 1, 2)) == 0).sum() == 4  # conv0: 4 of 8 filters held at zero
assert history.history["params"] == [analyze(masked).params] * 2
assert stripped.count_params() == pruned.count_params() == step.plan.after.params < model.count_params()
np.testing.assert_allclose(stripped.predict(x, verbose=0), masked.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
print("MIRRORED OK")
"""


@pytest.mark.slow  # minutes of CPU: runs with --slow (in CI after the fast set)
def test_mirrored_strategy_on_two_logical_cpus():
    here = os.path.dirname(__file__)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", MIRRORED], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "MIRRORED OK" in result.stdout, result.stdout[-2000:] + result.stderr[-3000:]
