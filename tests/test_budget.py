"""Budget-targeted pruning and the trade-off table (predicted resources; real TFLM in test_deploy)."""
import dataclasses
import types

import pytest

from keras_cprune import ArenaFigure, Budget, SearchConfig, plan_to_budget, prune_to_budget
from planning import fitted_and_plan
from keras_cprune.deploy.arena import estimate_arena
from keras_cprune.budget.fit import fit_budget
from keras_cprune.budget.search import search
from keras_cprune.budget.usage import Usage, usage_estimator
from keras_cprune.errors import BudgetError
from keras_cprune.pruning.context import PruneContext
from keras_cprune.tradeoff_table import tradeoff
from keras_cprune.zoo import vgg
from tflm_export.micro.planner import align


@pytest.mark.parametrize("ram", [16_000, 12_000, 9_000])
def test_ram_budget_is_met_by_the_least_pruning(ram):
    model = vgg()
    context = PruneContext.of(model)
    removed, history = search(context, "MA", Budget(ram=ram), usage_estimator(context), progress=None)
    assert history[-1].usage.arena.bytes <= ram < history[-2].usage.arena.bytes  # one step less would not fit
    pruned = prune_to_budget(model, Budget(ram=ram), mode="MA", progress=None)
    assert estimate_arena(pruned, assume_trained=True).bytes == history[-1].usage.arena.bytes <= ram


@pytest.mark.parametrize("allocation", ["cost", "paper"])
def test_round_to_cuts_whole_multiples_and_reaches_a_budget_above_the_floor(allocation):
    """Widths 8 and 16 with round_to=2: a 10% step (one channel) would keep an odd width, so each
    cut rounds up to two channels; the search must not stop early and call the budget out of reach."""
    model = vgg(input_shape=(16, 16, 1), widths=(8, 16))
    pruned, plan = fitted_and_plan(model, Budget(ram=4_875), mode="MA", round_to=2, verbose=0,
                                   search=SearchConfig(allocation=allocation, verify=False))
    assert plan.after.arena.bytes <= 4_875
    kernels = [layer.kernel.shape[-1] for layer in pruned.layers if hasattr(layer, "kernel")][:-2]
    assert all(width % 2 == 0 for width in kernels), kernels


def test_verify_keeps_pruning_only_until_the_measurement_fits_the_users_budget():
    """A runtime that needs 1,500 B more than predicted: the search goes on until the measured
    arena fits the user's 14 KB, and stops there (the last state before measured over)."""
    context = PruneContext.of(vgg())
    estimate, measured = usage_estimator(context), []

    def verify(removed):
        usage = estimate(removed)
        measured.append(Usage(dataclasses.replace(usage.arena, bytes=usage.arena.bytes + 1_500, source="measured"), usage.flash, usage.macs))
        return measured[-1]

    plan, removed = fit_budget(context, "MA", Budget(ram=14_336), verify=verify, progress=None)
    assert measured[-1].arena.bytes <= 14_336 < measured[-2].arena.bytes
    _, history = search(context, "MA", Budget(ram=14_336 - 1_500), estimate, progress=None)
    assert estimate(removed).arena.bytes == history[-1].usage.arena.bytes  # the least pruning with the runtime's excess
    assert any(g.reason == "pruned to fit ram <= 14,336 B" for g in plan.groups)


def test_ma_reaches_a_ram_budget_with_less_pruning_than_pa():
    model = vgg()
    ma = plan_to_budget(model, Budget(ram=14_000), mode="MA", progress=None)
    pa_plan = plan_to_budget(model, Budget(flash=30_000), mode="PA", progress=None)
    assert ma.after.params > pa_plan.after.params  # MA cut little: the peak is in the first layers
    assert {p for g in ma.groups if g.kept_channels < g.channels for p in g.producers} <= {"conv0", "conv1"}


def test_macs_and_flash_budgets_together():
    model = vgg()
    pruned, plan = fitted_and_plan(model, Budget(macs=1_000_000, flash=40_000), mode="FA", progress=None)
    assert plan.after.macs <= 1_000_000
    context = PruneContext.of(pruned)
    assert usage_estimator(context)(set()).flash <= 40_000


def test_progress_prints_a_line_per_step():
    lines = []
    prune_to_budget(vgg(), Budget(ram=12_000), mode="MA", progress=lines.append)
    assert len(lines) >= 2 and all("arena" in line and "params" in line for line in lines)


def test_impossible_budget_names_the_smallest_reachable_arena_and_its_bound():
    with pytest.raises(BudgetError, match=r"Smallest reachable at that floor: arena [\d,]+ B.*model input 'input_layer[_0-9]*' \(28, 28, 1\)"):
        prune_to_budget(vgg(), Budget(ram=500), mode="MA", search=SearchConfig(verify=False), verbose=0)


@pytest.mark.parametrize("limit,match", [
    ({"flash": 2_000}, r"flash [\d,]+ B > 2,000 B\. .*Flash left are mostly in 'logits'"),
    ({"macs": 1_000}, r"macs [\d,]+ > 1,000\. .*MACs left are mostly in 'conv")])  # MACs: no " B"
def test_impossible_flash_or_macs_budget_names_what_is_left(limit, match):
    with pytest.raises(BudgetError, match=match):
        prune_to_budget(vgg(), Budget(**limit), mode="PA", min_keep=0, search=SearchConfig(verify=False), verbose=0)


@pytest.mark.parametrize("bad,match", [
    (lambda: Budget(), r"sets no limit; give ram=.*Received: budget=Budget\(\)"),
    (lambda: Budget(ram=-5), r"positive size.*Received: ram=-5"),
    (lambda: {"ram": 12_000}, r"Expected `budget` argument to be a `keras_cprune.Budget`.*Budget\(\*\*d\).*"
                              r"Received: budget=\{'ram': 12000\} \(a dict\)"),
    (lambda: types.SimpleNamespace(ram=12_000, flash=None, macs=None), r"Received: budget=namespace\(ram=12000.*"
                                                                        r"\(a SimpleNamespace\)")])
def test_malformed_budget(bad, match):
    with pytest.raises(BudgetError, match=match):
        prune_to_budget(vgg(), bad(), mode="MA", progress=None)


def test_a_search_tightens_its_budget_with_replace():
    """A limit lowered by dataclasses.replace is searched for as any other: the arena's 16-byte
    steps count (a prediction 1-15 B over a 16-byte multiple is over)."""
    context = PruneContext.of(vgg())
    budget = Budget(ram="16KB", macs=10**9)
    tighter = dataclasses.replace(budget, ram=12_000)
    assert tighter == Budget(ram=12_000, macs=10**9)
    _, history = search(context, "MA", tighter, usage_estimator(context), progress=None)
    assert align(history[-1].usage.arena.bytes) <= 12_000 and not history[-1].usage.over(tighter)
    assert Usage(ArenaFigure(12_001, "predicted"), 0, 0).over(Budget(ram=12_016)) == {}
    assert Usage(ArenaFigure(12_017, "predicted"), 0, 0).over(Budget(ram=12_016))["ram"].used == 12_032


def test_tradeoff_table_and_plot(tmp_path):
    table = tradeoff(vgg(), ratios=(0.0, 0.5))
    assert [(p.mode, p.ratio) for p in table.points] == [(m, r) for m in ("PA", "FA", "MA") for r in (0.0, 0.5)]
    base = table.points[0]
    assert base.params == vgg().count_params() and base.arena_bytes == estimate_arena(vgg(), assume_trained=True).bytes
    for p in table.points[1::2]:
        assert p.params < base.params and p.arena_bytes <= base.arena_bytes
    pa, ma = table.points[1], table.points[5]
    assert pa.params < ma.params and ma.arena_bytes < pa.arena_bytes
    assert table.to_csv().startswith("mode,ratio,params,macs")
    assert open(table.plot(str(tmp_path / "t.png")), "rb").read(4) == b"\x89PNG"
    per_tensor = tradeoff(vgg(), modes=("PA",), ratios=(0.0,), per_channel_dense=False).points[0]
    assert per_tensor.arena_bytes == estimate_arena(vgg(), assume_trained=True, per_channel_dense=False).bytes
    assert per_tensor.arena_bytes < base.arena_bytes and per_tensor.flash_bytes < base.flash_bytes


def test_plan_reports_arena_and_its_peak_before_and_after():
    plan = plan_to_budget(vgg(), Budget(ram=12_000), mode="MA", progress=None)
    assert plan.before.arena.bytes == estimate_arena(vgg(), assume_trained=True).bytes > 12_000 >= plan.after.arena.bytes
    assert plan.before.arena.peak == "pool0"  # conv0's output and pool0's output alive together
    text = plan.summary(print_fn=None)
    assert "Arena peak at" in text and "TFLM arena (B, pred.)" in text
