"""Test shorthands: a pruned model together with its plan, as `plan_pruning`/`plan_to_budget` then `apply_plan`."""
from keras_cprune import apply_plan, plan_pruning, plan_to_budget


def pruned_and_plan(model, mode="PA", ratio=0.5, *, reinitialize=False, **options):
    """``(prune(model, mode, ratio, **options), plan_pruning(model, mode, ratio, **options))``, planned once."""
    plan = plan_pruning(model, mode, ratio, **options)
    return apply_plan(model, plan, reinitialize=reinitialize, input_shape=options.get("input_shape")), plan


def fitted_and_plan(model, budget, *, reinitialize=False, **options):
    """``(prune_to_budget(model, budget, **options), plan_to_budget(model, budget, **options))``, searched once."""
    plan = plan_to_budget(model, budget, **options)
    return apply_plan(model, plan, reinitialize=reinitialize, input_shape=options.get("input_shape")), plan
