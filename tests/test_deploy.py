"""Budget-targeted pruning checked on the real TFLM runtime (issue: fit a RAM budget)."""
import keras
import pytest

from keras_cprune import Budget, SearchConfig, estimate_arena, prune_to_budget
from planning import fitted_and_plan
from keras_cprune.budget.fit import tflm_verifier
from keras_cprune.budget.search import search
from keras_cprune.graph.clone import as_trained
from keras_cprune.budget.usage import usage_estimator
from keras_cprune.pruning.context import PruneContext
from keras_cprune.zoo import vgg
from tflm_export.micro.planner import align

KB = 1024


def wide_vgg():
    return vgg(widths=(64, 128, 256))  # unpruned arena 69,696 B at 28x28


def mobilenetv2():
    # logits: an untrained softmax makes TFLM abort (see test_tflm_export)
    return keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35, classes=10,
                                          classifier_activation=None)


@pytest.mark.parametrize("build,ram", [(wide_vgg, 32 * KB), (wide_vgg, 48 * KB), (wide_vgg, 64 * KB),
                                       pytest.param(mobilenetv2, 128 * KB, marks=pytest.mark.slow)],
                         ids=["vgg-32KB", "vgg-48KB", "vgg-64KB", "mobilenetv2-128KB"])
def test_ram_budget_met_on_tflm_and_one_step_less_does_not_fit(build, ram):
    model = build()
    assert estimate_arena(model).bytes > ram  # the budget needs pruning
    context = PruneContext.of(model)
    removed, history = search(context, "MA", Budget(ram=ram), usage_estimator(context), progress=None)
    measure = tflm_verifier(context)
    assert measure(removed).arena.bytes <= ram  # measured on TFLM
    assert measure(set(history[-2].removed)).arena.bytes > ram  # one step less would not have fit


def test_prune_with_verify_returns_a_model_that_fits():
    lines = []
    pruned = prune_to_budget(wide_vgg(), Budget(ram="40KB"), mode="MA", search=SearchConfig(verify=True), progress=lines.append)
    context = PruneContext.of(pruned)
    assert tflm_verifier(context)(set()).arena.bytes <= 40 * KB
    assert any("arena" in line for line in lines)


@pytest.mark.parametrize("build,ram", [(vgg, "64KB"), pytest.param(mobilenetv2, "256KB", marks=pytest.mark.slow)],
                         ids=["vgg-64KB", "mobilenetv2-256KB"])
def test_budget_already_met_prunes_nothing_and_fits_on_tflm(build, ram):
    model = build()
    pruned, plan = fitted_and_plan(model, Budget(ram=ram), mode="MA", verbose=0)
    assert pruned.count_params() == model.count_params() and plan.after.to_dict() == {**plan.before.to_dict(), **{k: v for k, v in plan.after.to_dict().items() if k.startswith("measured")}}
    assert plan.after.measured_arena.bytes == tflm_verifier(PruneContext.of(pruned))(set()).arena.bytes <= Budget(ram=ram).ram


def test_a_fresh_models_zero_dense_bias_is_predicted_dropped_now_and_counted_once_trained():
    """The converter drops an all-zero Dense bias: a freshly built model needs a little less arena
    than the same model trained. Both are predicted exactly (to the 16-byte measuring step)."""
    import numpy as np

    from tflm_export import convert, find_min_arena

    fresh = vgg(input_shape=(16, 16, 1), widths=(4, 8))
    x = np.random.default_rng(0).uniform(0, 1, (16, 16, 16, 1)).astype("float32")
    trained = as_trained(keras.models.clone_model(fresh))
    measured = {name: find_min_arena(convert(m, x)).bytes for name, m in (("fresh", fresh), ("trained", trained))}
    predicted = {"fresh": estimate_arena(fresh).bytes, "trained": estimate_arena(fresh, assume_trained=True).bytes}
    assert predicted["fresh"] < predicted["trained"] == estimate_arena(trained).bytes
    assert measured == {name: align(b) for name, b in predicted.items()}


def test_a_budget_for_a_per_tensor_dense_export_is_predicted_and_measured_as_that_export():
    """The MLPerf Tiny autoencoder: its per-channel Dense multipliers alone exceed 8 KB (no pruning
    down to min_keep fits), while exported with per-tensor Dense weights it fits unpruned."""
    from keras_cprune import zoo
    from keras_cprune.errors import BudgetError

    model = zoo.fc_autoencoder()
    with pytest.raises(BudgetError, match=r"ram [\d,]+ B > 8,192 B"):
        prune_to_budget(model, Budget(ram="8KB"), mode="MA", verbose=0)
    pruned, plan = fitted_and_plan(model, Budget(ram="8KB"), mode="MA", per_channel_dense=False, verbose=0)
    assert pruned.count_params() == model.count_params()
    context = PruneContext.of(pruned, per_channel_dense=False)
    assert plan.after.measured_arena.bytes == tflm_verifier(context)(set()).arena.bytes == align(plan.after.arena.bytes)
    assert plan.after.measured_arena.bytes <= 8 * KB
