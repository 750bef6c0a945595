"""The accuracy protocol's tables and plot (docs/BENCHMARKS.md, "Accuracy protocol"), from the JSON files of
`accuracy_sweep`: per configuration the mean ± sd over seeds, differences paired by seed with their 95%
t-intervals, the issue's targets, time to accuracy, and the learning-rate probes.

    python benchmarks/accuracy_sweep.py --report [FILE] [--plot PNG]
"""
from __future__ import annotations

import os
import statistics

from _common import read_results, t_interval
from accuracy_sweep import (ABN_MODES, BUDGETS, CLOCKS, COST_MODES, TARGET_GAP, WIDTH_OF, Config, configs, learning_rate,
                            mode_of)
from compare_methods import RESOURCE

from keras_cprune import zoo

def load_records(out: str) -> dict:
    records = {}
    for record in read_results(out):
        c = record["config"]
        records[Config(c["arch"], c["method"], c["budget"], c["seed"])] = record
    return records


def time_to_accuracy(record: dict, target: float, clock: str = "train_s") -> float | None:
    """Training seconds (``clock``: "train_s" wall, "cpu_s" CPU) until the validation accuracy first
    reaches ``target`` (tpf: the dense run's seconds included); None if it never does."""
    return next((e[clock] for e in record["log"] if e["val_acc"] >= target), None)


def pp(diffs) -> str:
    """Mean ± half-width of the 95% t-interval, in percentage points."""
    mean, half = t_interval([100 * d for d in diffs])
    return f"{mean:+.2f} ± {half:.2f}" if half == half else f"{mean:+.2f} (n=1)"


def paired(runs: dict, other: dict, key: str = "test_acc") -> list:
    """Differences ``runs - other`` of ``key``, paired by seed."""
    return [runs[s][key] - other[s][key] for s in runs if s in other]


def baseline_of(method: str) -> str | None:
    """The uniform-width configuration a method is compared with: same resource, same budget."""
    mode = mode_of(method)
    return WIDTH_OF[mode] if mode else None


def report(out: str) -> str:
    """Markdown: per configuration, accuracy mean ± std over seeds, paired differences (pp, 95%
    t-interval) against dense and against the uniform width of the same resource, time to accuracy."""
    groups = {}
    for c, r in load_records(out).items():
        groups.setdefault((c.arch, c.method, c.budget), {})[c.seed] = r
    lines = ["| arch | method | budget | seeds | test acc % (mean ± sd) | int8 − float pp | params | MACs | "
             "arena B (pred.) | Δ vs dense pp | Δ vs uniform width pp | time to dense − 0.5 pp: wall s, CPU s "
             "(reached) |", "| --- | --- | --- | ---: |" + " ---: |" * 8]
    order = {(c.arch, c.method, c.budget): i for i, c in enumerate(configs(zoo.ARCHITECTURES, [0]))}
    for (arch, method, budget), runs in sorted(groups.items(), key=lambda kv: order.get(kv[0], len(order))):
        dense = groups.get((arch, "dense", 0), {})
        width = groups.get((arch, baseline_of(method), budget), {})
        acc = [100 * r["test_acc"] for r in runs.values()]
        int8 = [r["int8_test_acc"] - r["test_acc"] for r in runs.values() if r.get("int8_test_acc") is not None]
        reached = [tuple(time_to_accuracy(r, dense[s]["val_acc"] - TARGET_GAP, clock) for clock in CLOCKS)
                   for s, r in runs.items() if s in dense]
        done = [t for t in reached if t[0] is not None]
        first = next(iter(runs.values()))
        cells = [arch, method, f"−{budget}%" if budget else "—", str(len(runs)),
                 f"{statistics.fmean(acc):.2f} ± {statistics.stdev(acc) if len(acc) > 1 else 0:.2f}",
                 f"{100 * max(int8, key=abs):+.2f} (worst of {len(int8)})" if int8 else "—",
                 f"{first['params']:,}", f"{first['macs']:,}", f"{first['predicted_arena']:,}",
                 pp(paired(runs, dense)) if method != "dense" and paired(runs, dense) else "—",
                 pp(paired(runs, width)) if paired(runs, width) else "—",
                 (f"{statistics.fmean(t[0] for t in done):,.0f}, {statistics.fmean(t[1] for t in done):,.0f} "
                  f"({len(done)}/{len(reached)})") if done else f"— (0/{len(reached)})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*headline(groups), "", *lines, "", *targets(groups), "", *probe_table(out)]).rstrip()


def headline(groups: dict) -> list[str]:
    """Methods (rows) x architectures (columns): test accuracy mean ± sd over seeds (n), and the
    paired difference against the uniform width of the same resource; the README's table."""
    archs = [a for a in zoo.ARCHITECTURES if (a, "dense", 0) in groups]
    rows = dict.fromkeys((c.method, c.budget) for c in configs(archs, [0]))
    lines = ["| method | budget | " + " | ".join(archs) + " |", "| --- | --- |" + " ---: |" * len(archs)]
    for method, budget in rows:
        cells = []
        for arch in archs:
            runs = groups.get((arch, method, budget))
            if not runs:
                cells.append("—" if budget not in BUDGETS[arch] else "not run")
                continue
            acc = [100 * r["test_acc"] for r in runs.values()]
            width = paired(runs, groups.get((arch, baseline_of(method), budget), {}))
            cells.append(f"{statistics.fmean(acc):.2f} ± {statistics.stdev(acc) if len(acc) > 1 else 0:.2f} "
                         f"({len(acc)})" + (f"; {pp(width)} vs width" if width and mode_of(method) else ""))
        lines.append(f"| {method} | {f'−{budget}%' if budget else '—'} | " + " | ".join(cells) + " |")
    return lines


def time_verdict(scratch: dict, tpf: dict, dense: dict) -> str:
    """Time to accuracy of ``scratch`` vs ``tpf`` runs over the seeds of both, judged on wall and on CPU
    seconds (the CPU seconds are robust to other work on a shared host).

    First to the issue's target, the dense run's final validation accuracy - 0.5 pp: a tpf run that never
    gets there counts its whole training (a lower bound), a scratch run that never does fails. Then, per
    seed, to the accuracy both pipelines reach (the lower of their final validation accuracies), which
    still compares the two when the target is out of reach at this number of epochs.
    """
    seeds = [s for s in scratch if s in tpf and s in dense]
    if not seeds:
        return "no runs"
    target = {s: dense[s]["val_acc"] - TARGET_GAP for s in seeds}
    ours = {clock: [time_to_accuracy(scratch[s], target[s], clock) for s in seeds] for clock in CLOCKS}
    missed = ours["train_s"].count(None)
    if missed:
        verdict = f"NOT met: from scratch never reached dense − 0.5 pp in {missed} of {len(seeds)} seeds"
    else:
        theirs = {clock: [time_to_accuracy(tpf[s], target[s], clock) or tpf[s]["log"][-1][clock] for s in seeds]
                  for clock in CLOCKS}
        verdict = saving(ours, theirs, len(seeds))
    common = {s: min(scratch[s]["val_acc"], tpf[s]["val_acc"]) for s in seeds}
    ours = {clock: [time_to_accuracy(scratch[s], common[s], clock) for s in seeds] for clock in CLOCKS}
    theirs = {clock: [time_to_accuracy(tpf[s], common[s], clock) for s in seeds] for clock in CLOCKS}
    return f"{verdict}; to the accuracy both reach ({pct(statistics.fmean(common.values()))} val): " + saving(
        ours, theirs, len(seeds))


def saving(ours: dict, theirs: dict, n: int) -> str:
    """How much less time ``ours`` took than ``theirs`` (means over seeds, per clock), against the 40% target."""
    less = {clock: 1 - statistics.fmean(ours[clock]) / statistics.fmean(theirs[clock]) for clock in CLOCKS}
    return ", ".join(f"{less[clock]:.0%} less {name} time ({'met' if less[clock] >= 0.4 else 'NOT met'})"
                     for clock, name in CLOCKS.items()) + f" ({n} seed{'s' * (n > 1)})"


def pct(fraction: float) -> str:
    return f"{100 * fraction:.2f}%"


def targets(groups: dict) -> list[str]:
    """The issue's targets, judged on the mean paired difference; "(CI)" when the whole 95%
    interval agrees."""
    def verdict(diffs, bound):
        if not diffs:
            return "no runs"
        mean, half = t_interval(diffs)
        return f"{pp([d / 100 for d in diffs])} pp: " + ("met" if mean >= bound else "NOT met") + (
            " (CI)" if half == half and (mean - half >= bound or mean + half < bound) else "")

    lines = ["| target | arch | configuration | result |", "| --- | --- | --- | --- |"]
    for arch in (a for a in zoo.ARCHITECTURES if (a, "dense", 0) in groups):
        get = lambda method, budget=50: groups.get((arch, method, budget), {})  # noqa: E731
        for method in [*RESOURCE, *(f"{m}-cost" for m in COST_MODES), *(f"{m}-abn" for m in ABN_MODES)]:
            diffs = [100 * d for d in paired(get(method), get(baseline_of(method)))]
            lines.append(f"| −50% ≥ uniform width | {arch} | {method} | {verdict(diffs, 0.0)} |")
            diffs = [100 * d for d in paired(get(method), get("dense", 0))]
            lines.append(f"| −50% within 1.0 pp of dense | {arch} | {method} | {verdict(diffs, -1.0)} |")
        for mode in COST_MODES:  # our allocation against the paper's rule at the same budget
            diffs = [100 * d for d in paired(get(f"{mode}-cost"), get(mode))]
            lines.append(f"| cost allocation ≥ paper rule | {arch} | {mode}-cost − {mode} | {verdict(diffs, 0.0)} |")
        if (arch, "PA", 70) in groups:
            diffs = [100 * d for d in paired(get("PA", 70), get("dense", 0))]
            lines.append(f"| −70% params within 0.5 pp of dense | {arch} | PA | {verdict(diffs, -0.5)} |")
        for tpf in ("tpf-FA", "tpf-kd-FA"):
            lines.append(f"| time to accuracy ≥ 40% below {tpf} | {arch} | FA from scratch | "
                         f"{time_verdict(get('FA'), get(tpf), get('dense', 0))} |")
    lines.append(abn_verdict(groups))
    gaps = [100 * (r["int8_test_acc"] - r["test_acc"]) for runs in groups.values() for r in runs.values()
            if r.get("int8_test_acc") is not None]
    worst = max(gaps, key=abs) if gaps else None
    lines.append(f"| int8 within 0.5 pp of float | all | {len(gaps)} models on TFLM | "
                 + (f"worst {worst:+.2f} pp: {'met' if abs(worst) <= 0.5 else 'NOT met'} |" if gaps else "no runs |"))
    return lines


def abn_verdict(groups: dict) -> str:
    """Item 4's rule (docs/BENCHMARKS.md): the adaptive-BN allocation beats the uniform width of its resource, the
    whole 95% interval above 0, for PA or FA on at least 2 of the 3 architectures."""
    archs = [a for a in zoo.ARCHITECTURES if any((a, f"{m}-abn", 50) in groups for m in ABN_MODES)]
    wins = []
    for arch in archs:
        for mode in ABN_MODES:
            diffs = [100 * d for d in paired(groups.get((arch, f"{mode}-abn", 50), {}),
                                             groups.get((arch, WIDTH_OF[mode], 50), {}))]
            mean, half = t_interval(diffs) if len(diffs) > 1 else (0.0, float("nan"))
            if half == half and mean - half > 0:
                wins.append(f"{arch} {mode}")
    won = len({w.split()[0] for w in wins})
    return (f"| adaptive-BN allocation beats uniform width (CI) on ≥ 2 of 3 architectures | "
            f"{', '.join(archs) or 'none run'} | PA-abn, FA-abn | {won} of {len(archs)} run"
            f"{' (' + ', '.join(wins) + ')' if wins else ''}: {'met' if won >= 2 else 'NOT met'} |")


def plot(out: str, path: str) -> str:
    """Per architecture, each method's test accuracy: mean and ± sd over seeds (dots: the seeds),
    the dense mean as a vertical line and its − 1 pp as a dotted one."""
    from keras_cprune.plots import _pyplot

    plt = _pyplot()
    groups, records = {}, load_records(out)
    order = {(c.arch, c.method, c.budget): i for i, c in enumerate(configs(zoo.ARCHITECTURES, [0]))}
    for c in sorted(records, key=lambda c: (order.get((c.arch, c.method, c.budget), len(order)), c.seed)):
        groups.setdefault(c.arch, {}).setdefault(f"{c.method} −{c.budget}%" if c.budget else c.method, []).append(
            100 * records[c]["test_acc"])
    archs = [a for a in zoo.ARCHITECTURES if a in groups]
    fig, axes = plt.subplots(1, len(archs), figsize=(4.6 * len(archs), 0.42 * max(map(len, groups.values())) + 1.6),
                             squeeze=False)
    for ax, arch in zip(axes[0], archs):
        labels = list(groups[arch])
        for y, label in enumerate(labels):
            accs = groups[arch][label]
            ax.errorbar([statistics.fmean(accs)], [y], xerr=[statistics.stdev(accs) if len(accs) > 1 else 0],
                        fmt="o", capsize=3, color="C3" if label == "dense" else "C0")
            ax.plot(accs, [y] * len(accs), ".", color="0.5", markersize=4)
        if "dense" in groups[arch]:
            dense = statistics.fmean(groups[arch]["dense"])
            ax.axvline(dense, color="C3", linewidth=0.8)
            ax.axvline(dense - 1, color="C3", linewidth=0.8, linestyle=":")
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("test accuracy % (mean ± sd; dots: seeds)")
        ax.set_title(arch)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Fashion-MNIST, accuracy protocol\nred: dense mean; dotted: dense − 1 pp", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def probe_table(out: str) -> list[str]:
    """Markdown: validation accuracy per learning rate of the `probe_lr` runs, the learning rate the
    sweep uses marked."""
    runs = {}
    for r in read_results(os.path.join(out, "probes")):
        c = r["config"]
        runs.setdefault(Config(c["arch"], c["method"], c["budget"], c["seed"]), {})[c["lr"]] = r["val_acc"]
    if not runs:
        return []
    lrs = sorted({lr for by_lr in runs.values() for lr in by_lr})
    lines = ["| val acc % per learning rate | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |",
             "| --- |" + " ---: |" * len(lrs)]
    for config, by_lr in sorted(runs.items(), key=lambda kv: kv[0].name):
        cells = [f"{100 * by_lr[lr]:.2f}" + " (used)" * (lr == learning_rate(config)) if lr in by_lr else "—"
                 for lr in lrs]
        lines.append(f"| {config.arch} {config.method} seed {config.seed} | " + " | ".join(cells) + " |")
    return lines
