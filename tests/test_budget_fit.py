"""Budgets on graphs written elsewhere: every result is measured on TFLM and fits, no layer goes
under ``min_keep``, the search prints one line, and both allocations work."""
import math

import pytest

from keras_cprune import Budget, SearchConfig, estimate_arena, plan_to_budget, prune_to_budget, zoo
from keras_cprune.errors import BudgetError
from models import randomize
from planning import fitted_and_plan, pruned_and_plan


def floor(width, min_keep=0.25):
    return max(1, math.ceil(min_keep * width))


@pytest.mark.parametrize("name", ["ds_cnn", "fc_autoencoder", "resnet8"])  # VWW: bench_budget.py (slow to convert)
def test_mlperf_tiny_budget_fits_when_measured_and_keeps_min_keep(name, capsys):
    model = zoo.MLPERF_TINY[name]()
    randomize(model)
    limit = int(0.8 * estimate_arena(model, assume_trained=True).bytes)
    pruned, plan = fitted_and_plan(model, Budget(ram=limit), mode="MA", verbose=2)
    after = plan.after
    assert after.arena.bytes <= after.measured_arena.bytes <= limit  # measured by default
    assert after.arena.source == "predicted" and after.measured_arena.source == "measured"
    assert abs(after.flash_bytes - after.measured_flash_bytes) <= 0.01 * after.measured_flash_bytes
    for group in plan.groups:
        for layer, kept in group.kept.items():
            assert len(kept) >= floor(group.widths[layer]), (layer, len(kept), group.widths[layer])
    lines = [line for line in capsys.readouterr().out.splitlines() if "budget search" in line]
    assert len(lines) == 1 and "measured" in lines[0]


@pytest.mark.parametrize("allocation", ["cost", "paper"])
def test_both_allocations_fit_and_the_cost_allocation_prunes_no_more(allocation):
    model = zoo.resnet8()
    limit = 45_000
    plan = plan_to_budget(model, Budget(ram=limit), mode="MA", search=SearchConfig(allocation=allocation, verify=False),
                          verbose=0)
    assert plan.after.arena.bytes <= limit
    if allocation == "cost":  # the least pruning that fits: within a few percent of the budget
        assert plan.after.arena.bytes >= 0.95 * limit


def test_ratio_pruning_stops_at_min_keep_unless_lowered():
    model = zoo.ds_cnn()
    kept = {layer: len(k) for g in pruned_and_plan(model, "PA", 0.95, rule="all")[1].groups
            for layer, k in g.kept.items()}
    assert min(kept.values()) == floor(64)
    lowered = pruned_and_plan(model, "PA", 0.95, rule="all", min_keep=0.0)[1]
    assert min(len(k) for g in lowered.groups for k in g.kept.values()) < floor(64)


def test_a_budget_out_of_reach_at_the_floor_says_what_lowering_min_keep_reaches():
    with pytest.raises(BudgetError, match=r"min_keep=0.25.*Smallest reachable at that floor: arena [\d,]+ B.*"
                                          r"With min_keep=0 .* could reach arena [\d,]+ B"):
        prune_to_budget(zoo.fc_autoencoder(), Budget(ram=15_000), mode="MA", search=SearchConfig(verify=False), verbose=0)


@pytest.mark.parametrize("bad,match", [({"allocation": "greedy"}, "allocation"), ({"min_keep": 1.5}, "min_keep"),
                                       ({"verify": "yes"}, "verify")])
def test_bad_budget_options_are_named(bad, match):
    from keras_cprune.errors import CPruneError

    with pytest.raises(CPruneError, match=match):
        prune_to_budget(zoo.vgg(), Budget(ram=12_000), mode="MA", verbose=0, **bad)
