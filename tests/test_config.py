"""PruneConfig: one options object for prune, prune_to_budget, prune_during_training and the callback."""
import dataclasses
import json

import keras
import numpy as np
import pytest

from keras_cprune import Budget, PruneConfig, SearchConfig, plan_pruning, prune, prune_during_training, prune_to_budget
from keras_cprune.training.callbacks import FilterPruningStep
from keras_cprune.deploy.arena import estimate_arena
from keras_cprune.errors import PruningError, UnknownOptionError
from keras_cprune.training.masks import strip
from keras_cprune.training.schedules import ConstantRatio
from models import randomize, vgg
from planning import fitted_and_plan, pruned_and_plan

SMALL = {"input_shape": (16, 16, 1), "widths": (8, 16)}


def same_result(a, b) -> None:
    """Two ``(model, plan)`` results are the same pruning: plan, layer widths and weights."""
    (model_a, plan_a), (model_b, plan_b) = a, b
    assert plan_a.to_dict() == plan_b.to_dict()
    assert [w.shape for w in model_a.get_weights()] == [w.shape for w in model_b.get_weights()]
    assert all(np.array_equal(x, y) for x, y in zip(model_a.get_weights(), model_b.get_weights()))


@pytest.fixture(scope="module")
def model():
    model = vgg(keras)
    randomize(model, seed=5)
    return model


def test_default_config_prunes_as_prune_does(model):
    plain = pruned_and_plan(model, "FA", 0.5)
    same_result(plain, pruned_and_plan(model, "FA", 0.5, config=PruneConfig()))
    assert (plain[1].importance, plain[1].rule) == ("l1", "mean")


def test_config_and_keywords_are_the_same_options(model):
    config = PruneConfig(importance="l2", rule="all", round_to=4, min_keep=0.5)
    with_config = pruned_and_plan(model, "PA", 0.6, config=config)
    same_result(with_config, pruned_and_plan(model, "PA", 0.6, importance="l2", rule="all", round_to=4, min_keep=0.5))
    assert with_config[1].after.params < pruned_and_plan(model, "PA", 0.6)[1].after.params


def test_a_keyword_overrides_the_same_field_of_config(model):
    overridden = pruned_and_plan(model, "PA", 0.5, config=PruneConfig(rule="all", round_to=4), rule="mean")
    same_result(overridden, pruned_and_plan(model, "PA", 0.5, round_to=4))


def test_round_trip_through_json():
    config = PruneConfig(importance="bn_gamma", rule="coverage", threshold=1.5, coverage=0.6, min_filters=2,
                         min_keep=0.1, round_to=8, seed=3)
    again = PruneConfig.from_config(json.loads(json.dumps(config.get_config())))
    assert again == config and again.get_config() == config.get_config()
    assert "round_to=8" in repr(config) and "importance='bn_gamma'" in repr(config)


def test_a_callable_importance_is_not_serialized_and_says_so():
    def scores(layer):
        return np.arange(layer.output.shape[-1])

    config = PruneConfig(importance=scores)
    assert config.options()["importance"] is scores and config.get_config()["importance"] is None
    with pytest.raises(PruningError, match="callable importance.*cannot serialize"):
        PruneConfig.from_config(config.get_config())


def test_frozen_and_replace_validates():
    config = PruneConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rule = "all"
    assert dataclasses.replace(config, round_to=4).round_to == 4 and config.round_to == 1
    with pytest.raises(PruningError, match="min_keep"):
        dataclasses.replace(config, min_keep=1.5)


@pytest.mark.parametrize("field, value, says", [
    ("importance", "taylor", "Unknown importance criterion 'taylor'"),
    ("rule", "top", "Unknown selection rule 'top'"),
    ("threshold", -1.0, "`threshold`.*>= 0"),
    ("coverage", 1.2, r"`coverage`.*\[0, 1\]"),
    ("min_filters", 0, "`min_filters`.*0 filters"),
    ("min_filters", True, "`min_filters`"),
    ("min_keep", "half", r"`min_keep`.*\[0, 1\]"),
    ("round_to", 2.0, "`round_to`.*integer"),
    ("seed", -1, "`seed`.*>= 0"),
])
def test_validation_names_the_field_and_the_value(field, value, says):
    with pytest.raises(PruningError, match=says) as error:
        PruneConfig(**{field: value})
    assert f"Received: {field}={value!r}" in str(error.value)


def test_unknown_options_and_wrong_config_type(model):
    unknown = r"Unknown pruning option\(s\) \['criterion'\].*criterion='l2'"
    with pytest.raises(UnknownOptionError, match=unknown) as error:
        prune(model, "PA", 0.5, criterion="l2")
    assert isinstance(error.value, TypeError) and isinstance(error.value, PruningError)  # Python's type, and ours
    with pytest.raises(PruningError, match="Expected `config` to be a keras_cprune.PruneConfig.*dict"):
        prune(model, "PA", 0.5, config={"rule": "all"})


def test_budget_search_arguments_of_prune_name_prune_to_budget(model):
    with pytest.raises(UnknownOptionError, match=r"\['budget'\] belong to pruning to a budget: prune_to_budget"):
        prune(model, "MA", 0.5, budget=Budget(ram="12KB"))
    with pytest.raises(UnknownOptionError, match=r"\['step', 'verify'\].*verify=False.*search=SearchConfig"):
        prune(model, "MA", 0.5, verify=False, step=0.2)


def test_a_budget_search_takes_a_config_or_its_fields_and_its_plan_is_the_model():
    model = vgg(keras, **SMALL)
    randomize(model, seed=2)
    budget = Budget(ram=int(0.85 * estimate_arena(model, assume_trained=True).bytes))
    config = PruneConfig(importance="l2", min_keep=0.5)
    direct = fitted_and_plan(model, budget, mode="MA", config=config, search=SearchConfig(verify=False), verbose=0)
    same_result(direct, fitted_and_plan(model, budget, mode="MA", importance="l2", min_keep=0.5,
                                        search=SearchConfig(verify=False), verbose=0))
    assert direct[1].before.arena.bytes > budget.ram >= direct[1].after.arena.bytes
    pruned = prune_to_budget(model, budget, mode="MA", config=config, search=SearchConfig(verify=False), verbose=0)
    same_result((pruned, direct[1]), direct)  # prune_to_budget builds what plan_to_budget describes


def test_prune_builds_what_plan_pruning_describes(model):
    same_result((prune(model, "MA", 0.5, round_to=2), plan_pruning(model, "MA", 0.5, round_to=2)),
                pruned_and_plan(model, "MA", 0.5, round_to=2))


def test_filter_pruning_step_carries_its_config():
    config = PruneConfig(rule="coverage", coverage=0.5, round_to=2, min_keep=0.0, seed=4)
    step = FilterPruningStep("fa", ConstantRatio(0.5), config=config, unit="epoch")
    saved = json.loads(json.dumps(step.get_config()))
    assert saved["config"] == config.get_config() and saved["mode"] == "FA"
    again = FilterPruningStep.from_config(saved)
    assert again.config == config and again.unit == "epoch" and again.get_config() == saved
    assert FilterPruningStep("PA", ConstantRatio(0.5), config=config, round_to=4).config.round_to == 4


def test_prune_during_training_plans_with_the_config():
    model = vgg(keras, **SMALL)
    randomize(model, seed=1)
    config = PruneConfig(rule="all", round_to=4)
    masked, step = prune_during_training(model, "PA", schedule=ConstantRatio(0.5), config=config)
    assert step.config == config
    masked.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(8, 16, 16, 1)).astype("float32")
    masked.fit(x, np.zeros(8, dtype="int64"), batch_size=8, epochs=1, verbose=0, callbacks=[step])
    _, plan = pruned_and_plan(model, "PA", 0.5, config=config)  # step 0 plans on the untrained weights
    assert [g.kept for g in step.plan.groups] == [g.kept for g in plan.groups]
    small = strip(masked)
    assert (small.get_layer("conv0").filters, small.get_layer("conv1").filters) == (4, 8)  # halved, multiples of 4
