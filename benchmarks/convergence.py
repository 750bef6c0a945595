"""Accuracy at convergence (docs/BENCHMARKS.md, "Accuracy at convergence"): the accuracy protocol's sweep at
several schedules, one folder of JSON files per schedule (``docs/results/e<epochs>/``).

    python benchmarks/accuracy_sweep.py --study convergence --archs vgg --epochs 10 --threads 1
    python benchmarks/accuracy_sweep.py --study convergence --archs vgg --probe-lr 1e-3,3e-3 --probe-method dense
    python benchmarks/convergence.py [--report docs/results/CONVERGENCE.md] [--plot docs/results/convergence.png]
                                     [--readme README.md]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys

from _common import emit, read_results, t_interval
from accuracy_report import baseline_of, paired, pp, time_to_accuracy, time_verdict
from accuracy_sweep import BUDGETS, TARGET_GAP, WIDTH_OF, Config, mode_of

RESULTS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "results"))
SCHEDULES = {"vgg": (3, 10, 30), "resnet": (3, 10, 30), "mobilenetv2": (3, 10, 20)}  # epochs; the last is the longest
# the from-scratch learning rate per architecture: of {1e-3, 3e-3}, the best mean validation accuracy of the dense
# and the FA model (seed 0) at the longest schedule (`--probe-lr`, <RESULTS>/e<longest>/probes); one rate per
# architecture for every schedule and model, so the schedules differ in epochs alone
SCRATCH_LR = {"vgg": 3e-3, "mobilenetv2": 3e-3}
METHODS = {50: ("PA", "FA", "MA-cost"), 70: ("PA",)}  # the modes trained at each budget, with their uniform widths


def folder(epochs: int) -> str:
    return os.path.join(RESULTS, f"e{epochs}")


def configs(arch: str, seeds, epochs: int) -> list[Config]:
    """Per seed: dense, each mode and its uniform width; at the longest schedule, after those of every seed, also
    each mode at the dense model's training MACs (``<method>-B``), train -> prune -> fine-tune (``tpf-FA``), and
    on MobileNetV2 the joint −70% flash / −50% MACs / −50% arena model (``joint``)."""
    if epochs not in SCHEDULES[arch]:
        raise SystemExit(f"--epochs for {arch} in the convergence study is one of {SCHEDULES[arch]}. "
                         f"Received: {epochs}.")
    core, extra = [], []
    for seed in seeds:
        core.append(Config(arch, "dense", 0, seed))
        for budget in BUDGETS[arch]:
            core += [Config(arch, m, budget, seed) for m in METHODS[budget]]
            core += [Config(arch, WIDTH_OF[mode_of(m)], budget, seed) for m in METHODS[budget]]
            extra += [Config(arch, f"{m}-B", budget, seed) for m in METHODS[budget]]
            extra += [Config(arch, "tpf-FA", budget, seed)] * (budget == 50)
        extra += [Config(arch, "joint", 70, seed)] * (arch == "mobilenetv2")
    return core + extra * (epochs == SCHEDULES[arch][-1])


def scheduled(method: str) -> bool:
    """A row trained at every schedule (not one of the longest schedule's extra rows)."""
    return not (method.endswith("-B") or method in ("tpf-FA", "joint"))


def learning_rate(arch: str) -> float:
    if arch not in SCRATCH_LR:
        raise SystemExit(f"No validated learning rate for {arch} yet: run --study convergence --archs {arch} "
                         f"--probe-lr 1e-3,3e-3 --probe-method dense (and FA) at --epochs {SCHEDULES[arch][-1]}, "
                         "then set SCRATCH_LR.")
    return SCRATCH_LR[arch]


# ---------------------------------------------------------------- report
def groups() -> dict:
    """``{(arch, method, budget): {epochs: {seed: record}}}`` over every schedule's folder."""
    out = {}
    for name in sorted(os.listdir(RESULTS)) if os.path.isdir(RESULTS) else ():
        if name[:1] == "e" and name[1:].isdigit():
            for r in read_results(os.path.join(RESULTS, name)):
                c = r["config"]
                out.setdefault((c["arch"], c["method"], c["budget"]), {}).setdefault(int(name[1:]), {})[c["seed"]] = r
    return out


def table(data: dict, arch: str, value, title: str) -> list[str]:
    """Methods (rows) x schedules (columns) of ``arch``: ``value(method, budget, epochs, runs)`` per cell."""
    schedules = SCHEDULES[arch]
    lines = [f"| {arch}: {title} | budget | " + " | ".join(f"{e} epochs" for e in schedules) + " |",
             "| --- | --- |" + " ---: |" * len(schedules)]
    for c in configs(arch, [0], schedules[-1]):
        if (arch, c.method, c.budget) not in data or not scheduled(c.method):
            continue
        by_epochs = data[arch, c.method, c.budget]
        cells = [value(c.method, c.budget, e, by_epochs[e]) if e in by_epochs else "—" for e in schedules]
        lines.append(f"| {c.method} | {f'−{c.budget}%' if c.budget else '—'} | " + " | ".join(cells) + " |")
    return lines


def runs_of(data: dict, arch: str, method: str, budget: int, epochs: int) -> dict:
    return data.get((arch, method, budget), {}).get(epochs, {})


def accuracy(runs: dict) -> str:
    acc = [100 * r["test_acc"] for r in runs.values()]
    return f"{statistics.fmean(acc):.2f} ± {statistics.stdev(acc) if len(acc) > 1 else 0:.2f} ({len(acc)})"


def versus(runs: dict, other: dict) -> str:
    diffs = paired(runs, other)
    return pp(diffs) if diffs else "—"


def gap_tables(data: dict, arch: str) -> list[str]:
    """Test accuracy, and the paired gaps to dense and to the uniform width of the same resource, per schedule."""
    def to_dense(method, budget, epochs, runs):
        return versus(runs, runs_of(data, arch, "dense", 0, epochs)) if method != "dense" else "—"

    def to_width(method, budget, epochs, runs):
        width = baseline_of(method)
        return versus(runs, runs_of(data, arch, width, budget, epochs)) if mode_of(method) else "—"

    return [*table(data, arch, lambda m, b, e, runs: accuracy(runs), "test accuracy %, mean ± sd (n)"), "",
            *table(data, arch, to_dense, "Δ vs dense, pp (95% CI)"), "",
            *table(data, arch, to_width, "Δ vs uniform width, pp (95% CI)")]


def from_scratch(method: str) -> str:
    """The row trained from scratch for the schedule's epochs that a Scratch-B or tpf row is judged against."""
    return method.removesuffix("-B").removeprefix("tpf-")


def width_for(method: str, budget: int) -> tuple[str | None, int]:
    """The uniform width a row is judged against: the same resource at the same budget; for the joint model the
    uniform width of half the arena, its tightest limit (the report shows what that width keeps of the others)."""
    return ("width-arena", 50) if method == "joint" else (baseline_of(from_scratch(method)), budget)


RESOURCES = {"params": "parameters", "macs": "MACs", "predicted_arena": "arena bytes"}  # record field: its name


def kept(run: dict, dense: dict) -> str:
    """The share of the dense model's parameters, MACs and predicted arena that a model keeps."""
    return ", ".join(f"{run[k] / dense[k]:.0%}" for k in RESOURCES)


def longest_table(data: dict, arch: str) -> list[str]:
    """At the longest schedule: the equal-compute (Scratch-B), train -> prune -> fine-tune and joint models
    against dense, the same mode from scratch and uniform width, with the resources they keep and their CPU
    seconds (tpf: the dense training's included)."""
    epochs = SCHEDULES[arch][-1]
    dense = runs_of(data, arch, "dense", 0, epochs)
    lines = [f"| {arch}, {epochs} epochs | budget | epochs trained | test acc % | Δ vs dense pp | Δ vs the mode from "
             f"scratch at {epochs} epochs pp | Δ vs uniform width pp | params, MACs, arena kept | CPU s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in configs(arch, [0], epochs):
        runs = runs_of(data, arch, c.method, c.budget, epochs)
        if not runs or scheduled(c.method) and c.method != "dense":
            continue
        base, first, ref = from_scratch(c.method), next(iter(runs.values())), next(iter(dense.values()), None)
        trained = f"{epochs} + " * c.method.startswith("tpf") + str(first["config"]["epochs"])
        width, width_budget = width_for(c.method, c.budget)
        lines.append(
            f"| {c.method} | {f'−{c.budget}%' if c.budget else '—'} | {trained} | {accuracy(runs)} | "
            f"{versus(runs, dense) if c.method != 'dense' else '—'} | "
            f"{versus(runs, runs_of(data, arch, base, c.budget, epochs)) if base != c.method else '—'} | "
            f"{versus(runs, runs_of(data, arch, width, width_budget, epochs)) if width else '—'} | "
            f"{kept(first, ref) if ref else '—'} | "
            f"{statistics.fmean(r['cpu_s'] for r in runs.values()):,.0f} |")
    scratch, tpf = runs_of(data, arch, "FA", 50, epochs), runs_of(data, arch, "tpf-FA", 50, epochs)
    if scratch and tpf:
        lines += ["", f"Time to accuracy at {epochs} epochs, FA from scratch vs train → prune → fine-tune (tpf-FA, "
                  f"the dense run counted): {time_verdict(scratch, tpf, dense)}."]
        for method in ("FA", "FA-B", "tpf-FA", "dense"):
            runs = runs_of(data, arch, method, 50 if method != "dense" else 0, epochs)
            times = [time_to_accuracy(r, dense[s]["val_acc"] - TARGET_GAP, "cpu_s")
                     for s, r in runs.items() if s in dense]
            reached = [t for t in times if t is not None]
            if times:
                lines.append(f"- {method}: CPU s to dense − 0.5 pp (val) "
                             + (f"{statistics.fmean(reached):,.0f}" if reached else "never")
                             + f", reached in {len(reached)} of {len(times)} seeds")
    return lines


def report() -> str:
    data = groups()
    lines = []
    for arch in SCHEDULES:
        if any(k[0] == arch for k in data):
            lines += [f"## {arch}", "", *gap_tables(data, arch), "", *longest_table(data, arch), ""]
    return "\n".join(lines).rstrip()


README_MARKERS = ("<!-- convergence:start -->", "<!-- convergence:end -->")


def summary(data: dict) -> list[str]:
    """The README's table: per architecture and mode, the paired gap to dense / to uniform width (pp, 95% CI) at
    each schedule; at the longest schedule the joint model's verdict, Scratch-B and time to accuracy."""
    columns = ("3 epochs", "10 epochs", "longest: 30 (MobileNetV2 20)")
    lines = ["| arch | method | budget | " + " | ".join(f"{e}: vs dense / vs width" for e in columns) + " |",
             "| --- | --- | --- | ---: | ---: | ---: |"]
    for arch, schedules in SCHEDULES.items():
        for c in configs(arch, [0], schedules[-1]):
            if not (scheduled(c.method) and mode_of(c.method)) or (arch, c.method, c.budget) not in data:
                continue
            cells = []
            for epochs in schedules:
                runs = runs_of(data, arch, c.method, c.budget, epochs)
                width = runs_of(data, arch, baseline_of(c.method), c.budget, epochs)
                cells.append(f"{versus(runs, runs_of(data, arch, 'dense', 0, epochs))} / {versus(runs, width)}"
                             if runs else "—")
            lines.append(f"| {arch} | {c.method} | −{c.budget}% | " + " | ".join(cells) + " |")
    for arch, schedules in SCHEDULES.items():
        lines += joint_verdict(data, arch, schedules[-1])
        lines += equal_compute(data, arch, schedules[-1])
    return lines


def joint_verdict(data: dict, arch: str, epochs: int) -> list[str]:
    """The README's line on the joint model at ``epochs``: its paired gap to dense against the "no accuracy loss"
    line, and to the uniform width of its arena (`width_for`)."""
    joint, dense = runs_of(data, arch, "joint", 70, epochs), runs_of(data, arch, "dense", 0, epochs)
    diffs = [100 * d for d in paired(joint, dense)]
    if not diffs:
        return []
    mean, _ = t_interval(diffs)
    ref = next(iter(dense.values()))
    fewer = ", ".join(f"{1 - next(iter(joint.values()))[k] / ref[k]:.0%} fewer {name}" for k, name in RESOURCES.items())
    verdict = "holds" if mean >= -0.5 else f"misses by {-0.5 - mean:.2f} pp"
    width, width_budget = width_for("joint", 70)
    uniform = runs_of(data, arch, width, width_budget, epochs)
    to_width = (f"; vs the uniform width of the same arena ({width} −{width_budget}%, keeping "
                f"{kept(next(iter(uniform.values())), ref)} of the parameters, MACs and arena): "
                f"{versus(joint, uniform)} pp") if uniform else ""
    return ["", f"{arch} joint ({fewer}) at {epochs} epochs, {len(diffs)} seeds: {pp([d / 100 for d in diffs])} pp "
                f"vs dense: \"no accuracy loss\" (≥ −0.5 pp) {verdict}{to_width}."]


def equal_compute(data: dict, arch: str, epochs: int) -> list[str]:
    """The README's lines on training cost at the longest schedule: each Scratch-B model (the dense model's
    training MACs) against dense and against its own mode at ``epochs`` epochs (pp, paired, 95% CI), and FA
    from scratch against train -> prune -> fine-tune in time to accuracy."""
    dense = runs_of(data, arch, "dense", 0, epochs)
    cells = [f"{c.method} −{c.budget}% ({len(runs)} seed{'s' * (len(runs) > 1)}) {versus(runs, dense)} vs dense, "
             f"{versus(runs, runs_of(data, arch, from_scratch(c.method), c.budget, epochs))} vs "
             f"{from_scratch(c.method)} at {epochs} epochs" for c in configs(arch, [0], epochs)
             if c.method.endswith("-B") for runs in [runs_of(data, arch, c.method, c.budget, epochs)] if runs]
    lines = ["", f"{arch} at equal compute (Scratch-B, pp): " + "; ".join(cells) + "."] if cells else []
    scratch, tpf = runs_of(data, arch, "FA", 50, epochs), runs_of(data, arch, "tpf-FA", 50, epochs)
    if scratch and tpf:
        lines += ["", f"{arch} time to accuracy at {epochs} epochs, FA from scratch vs train → prune → fine-tune "
                      f"(the dense training counted): {time_verdict(scratch, tpf, dense)}; final test accuracy, "
                      f"from scratch vs train → prune → fine-tune: {versus(scratch, tpf)} pp."]
    return lines


def update_readme(path: str) -> None:
    """Replace the README's block between `README_MARKERS` with `summary`."""
    with open(path) as f:
        text = f.read()
    start, end = (text.index(m) for m in README_MARKERS)
    block = "\n".join([README_MARKERS[0], *summary(groups()), README_MARKERS[1]])
    with open(path, "w") as f:
        f.write(text[:start] + block + text[end + len(README_MARKERS[1]):])


def plot(path: str) -> str:
    """Per architecture, each mode's and uniform width's gap to dense (pp, mean and 95% interval) vs epochs, and the
    joint model's at the longest schedule."""
    from keras_cprune.plots import _pyplot

    plt, data = _pyplot(), groups()
    archs = [a for a in SCHEDULES if (a, "dense", 0) in data]
    rows = list(dict.fromkeys((c.method, c.budget) for a in archs for c in configs(a, [0], SCHEDULES[a][-1])
                              if c.method != "dense" and (scheduled(c.method) or c.method == "joint")))
    fig, axes = plt.subplots(1, max(1, len(archs)), figsize=(5.2 * max(1, len(archs)), 4.2), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        for i, c in enumerate(c for c in configs(arch, [0], SCHEDULES[arch][-1])
                              if (c.method, c.budget) in rows and (arch, c.method, c.budget) in data):
            xs, ys, errs = [], [], []
            if all("shared_with" in r for runs in data[arch, c.method, c.budget].values() for r in runs.values()):
                continue  # the same trained models as another width's line
            for epochs, runs in sorted(data[arch, c.method, c.budget].items()):
                diffs = [100 * d for d in paired(runs, runs_of(data, arch, "dense", 0, epochs))]
                if diffs:
                    mean, half = t_interval(diffs)
                    xs.append(epochs * (1 + 0.02 * i))  # side by side
                    ys.append(mean)
                    errs.append(0 if math.isnan(half) else half)
            joint = c.method == "joint"
            ax.errorbar(xs, ys, yerr=errs, marker="*" if joint else "o", capsize=3,
                        color=f"C{rows.index((c.method, c.budget)) % 10}",  # one colour per row in every panel
                        label="joint: ≤ 30% params, ≤ 50% MACs and arena" if joint else f"{c.method} −{c.budget}%",
                        linestyle="--" if c.method.startswith("width") else "-")
        ax.axhline(0, color="0.3", linewidth=0.8)  # dense; grey, apart from the rows' colours
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(SCHEDULES[arch], [str(e) for e in SCHEDULES[arch]])
        ax.set_xlabel("epochs")
        ax.set_ylabel("test accuracy − dense, pp (95% CI)")
        ax.set_title(arch)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Fashion-MNIST: gap to dense vs training length (paired by seed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", nargs="?", const="-", metavar="FILE", help="markdown tables (stdout or FILE)")
    parser.add_argument("--plot", metavar="PNG", help="gap to dense vs epochs")
    parser.add_argument("--readme", metavar="MD", help="rewrite the summary block of this README")
    args = parser.parse_args(argv)
    if args.readme:
        update_readme(args.readme)
    if args.plot:
        print(plot(args.plot))
    if args.report or not (args.plot or args.readme):
        emit(report(), args.report if args.report else "-")


if __name__ == "__main__":
    sys.exit(main())
