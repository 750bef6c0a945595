"""Smallest arena on the board's own TFLM build (Cortex-M, emulated) beside the host PyPI runtime.

For each .tflite and each probe built by scripts/cortexm/build.sh (core x kernel set), runs the probe
under qemu: it finds the smallest arena (16-byte steps) with which a fresh MicroInterpreter allocates
and invokes the model, and writes the outputs for one input. Beside it: the PyPI tflite-micro runtime's
`find_min_arena` (x86-64, reference kernels, recording allocator), whether the outputs match it, and
the arena `predict_arena_from_tflite(tflite, "<core>/<kernels>")` predicts for that build.
Without the toolchain, the builds or qemu it says what is missing and exits 0 (docs/CORTEXM.md).

    python benchmarks/bench_cortexm.py [MODEL.tflite ...] [--builds cortex-m4-reference,...]
    python benchmarks/bench_cortexm.py --instructions   # instructions per Invoke() (qemu plugin)

``--instructions`` counts the guest instructions qemu executes (scripts/cortexm/insn_count.c, a TCG
plugin) for 1 and 3 ``Invoke()`` s of one interpreter and prints their difference / 2 per build,
beside the PyPI runtime's median host latency, for the MLPerf Tiny truth-table models, pruned and not.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.environ.get("CORTEXM_ROOT", "/work/cortexm")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(REPO, "scripts", "cortexm", "build.sh")
CORES = ("cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m55")
KERNELS = ("reference", "cmsis_nn")
TIMEOUT_S = 3600


def emulator(core: str, elf: str, args: list) -> list | None:
    """The command that runs ``elf`` with semihosting ``args`` for ``core``; None when no emulator is here.

    M0+/M4/M7 code runs under qemu-arm (user mode, an A-profile core: the probe is compiled for the
    M core and linked against newlib's armv7-a library; Debian's qemu-arm 7.2 aborts on M-profile
    ELFs). M55 (MVE) needs system emulation: qemu-system-arm's mps3-an547 board.
    """
    if core == "cortex-m55":
        qemu = shutil.which("qemu-system-arm")
        if qemu is None:
            return None
        cmdline = ",".join("arg=" + a for a in [elf] + args)
        return [qemu, "-M", "mps3-an547", "-nographic", "-monitor", "none", "-serial", "none",
                "-semihosting-config", "enable=on,target=native," + cmdline, "-kernel", elf]
    qemu = shutil.which("qemu-arm")
    return None if qemu is None else [qemu, "-cpu", "cortex-a15", elf] + args


def missing(builds: list) -> list:
    """What the harness lacks here, as lines for the user (empty when it can run)."""
    lines = []
    if shutil.which("arm-none-eabi-gcc") is None:
        lines.append("arm-none-eabi-gcc: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                     "libstdc++-arm-none-eabi-newlib")
    if shutil.which("qemu-arm") is None:
        lines.append("qemu-arm (Cortex-M0+/M4/M7 runs): apt-get install qemu-user")
    if not builds:
        lines.append(f"no probe built under {ROOT}/build/<core>-<kernels>/probe.elf: run\n"
                     f"      {BUILD} prepare\n"
                     f"      {BUILD} all cortex-m4 reference   # and cortex-m4 cmsis_nn, ...")
    return lines


def built(selected: list | None) -> list:
    """(core, kernels, probe.elf) of each build present, in CORES x KERNELS order."""
    found = []
    for core in CORES:
        for kernels in KERNELS:
            name = f"{core}-{kernels}"
            elf = os.path.join(ROOT, "build", name, "probe.elf")
            if os.path.isfile(elf) and (selected is None or name in selected):
                found.append((core, kernels, elf))
    return found


def default_models(folder: str) -> list:
    """The four MLPerf Tiny models, the zoo's vgg and MobileNetV2 a0.35 96x96, randomly initialised,
    int8 (cached in ``folder``)."""
    os.makedirs(folder, exist_ok=True)
    names = ["resnet8", "ds_cnn", "mobilenet_v1_vww", "fc_autoencoder", "vgg", "mobilenet_v2_0.35_96"]
    paths = [os.path.join(folder, n + ".tflite") for n in names]
    if all(os.path.isfile(p) for p in paths):
        return paths
    import keras

    from keras_cprune import zoo
    from keras_cprune.graph.clone import as_trained
    from tflm_export import convert

    keras.utils.set_random_seed(0)
    builders = dict(zoo.MLPERF_TINY, vgg=zoo.vgg)
    builders["mobilenet_v2_0.35_96"] = lambda: keras.applications.MobileNetV2(
        weights=None, input_shape=(96, 96, 3), alpha=0.35, classes=10, classifier_activation=None)
    for name, path in zip(names, paths):
        if os.path.isfile(path):
            continue
        model = builders[name]()
        data = np.random.default_rng(0).uniform(0, 1, (16,) + tuple(model.inputs[0].shape[1:])).astype("float32")
        with open(path, "wb") as f:
            f.write(convert(as_trained(model), data))  # our own fresh model: no copy needed
    return paths


def host(tflite: bytes, inputs: list) -> tuple:
    """(smallest arena on the PyPI runtime, its output bytes) for ``inputs``, one array per input."""
    from tflm_export import find_min_arena
    from tflm_export.runtime.runner import run_model

    arena = find_min_arena(tflite).bytes
    run = run_model(tflite, arena, [x[None] for x in inputs], latency_runs=1)
    return arena, b"".join(np.ascontiguousarray(o[0]).tobytes() for o in run.outputs)


def make_inputs(tflite: bytes, seed: int = 0) -> list:
    """One random input per model input, in its dtype and shape (batch dimension dropped)."""
    from tflm_export import read_model

    rng = np.random.default_rng(seed)
    arrays = []
    for t in read_model(tflite).inputs:
        dtype = np.dtype(t.dtype)
        shape = tuple(t.shape[1:])
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            arrays.append(rng.integers(info.min, info.max + 1, shape).astype(dtype))
        else:
            arrays.append(rng.uniform(0, 1, shape).astype(dtype))
    return arrays


PROBE_LINE = re.compile(r"^PROBE (.*)$", re.M)


def run_probe(core: str, elf: str, model: str, input_path: str, output_path: str, extra: tuple = ()) -> dict:
    """The probe's ``PROBE`` lines as a dict: arena, arena_used_bytes, head, tail, ... (error on failure).

    A fault during the probe's in-process search (TFLM's CMSIS-NN FULLY_CONNECTED Prepare writes its
    kernel sums through the null pointer a too-small arena returns, on MVE) ends the emulated process:
    the smallest arena is then searched with one emulator process per size (`_search_by_process`)."""
    cmd = emulator(core, elf, [model, input_path, output_path, *extra])
    if cmd is None:
        return {"error": "no emulator for " + core}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {TIMEOUT_S} s"}
    result = {"rc": proc.returncode}
    for line in PROBE_LINE.findall(proc.stdout):
        for key, value in re.findall(r"(\w+)=(\S+)", line):
            if line.startswith("recording"):
                key = "recording_" + key
            elif line.startswith("alloc"):
                continue
            result[key] = int(value) if value.isdigit() else value
        if line.startswith("error="):
            result["error"] = line[len("error="):]
    if "arena" not in result and "error" not in result:
        result["error"] = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
    if not extra and str(result.get("error", "")).startswith("fault"):
        return _search_by_process(core, elf, model, input_path, output_path)
    return result


def _search_by_process(core: str, elf: str, model: str, input_path: str, output_path: str) -> dict:
    """The smallest arena (16-byte steps) that allocates and invokes, each size in a fresh emulator:
    from arena_used_bytes at 4 MiB, up until one fits, then galloping down and bisecting."""
    def run(arena: int) -> dict:
        return run_probe(core, elf, model, input_path, output_path, ("--arena", str(arena)))

    def fits(arena: int) -> bool:
        r = run(arena)
        return r.get("invoked") == 1 and "error" not in r

    big = run(4 * 1024 * 1024)
    if not fits(4 * 1024 * 1024) or "arena_used_bytes" not in big:
        return {"error": "fault, and fails even with 4 MiB"}
    hi = -(-big["arena_used_bytes"] // 16) * 16
    while not fits(hi):
        hi += max(16, hi // 8 // 16 * 16)
    lo, step = hi - 16, 16
    while lo > 0 and fits(lo):
        hi, step = lo, step * 2
        lo = max(0, hi - step)
    while hi - lo > 16:
        mid = (lo + hi) // 32 * 16
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return {**run(hi), "search": "per-process"}


PLUGIN = os.path.join(ROOT, "build", "insn_count.so")
MLPERF = ("resnet8", "ds_cnn", "mobilenet_v1_vww", "fc_autoencoder")


def count_instructions(core: str, elf: str, model: str, invokes: int) -> int | None:
    """Guest instructions qemu executed running the probe with ``--invokes``; None on failure."""
    cmd = emulator(core, elf, [model, "--invokes", str(invokes)])
    if cmd is None:
        return None
    cmd[1:1] = ["-plugin", PLUGIN, "-d", "plugin"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    found = re.findall(r"^INSNS (\d+)$", proc.stdout + proc.stderr, re.M)
    return int(found[-1]) if found and f"invokes={invokes}" in proc.stdout else None


def instructions(builds: list) -> int:
    """Instructions per Invoke() on each build beside host latency, MLPerf Tiny models pruned and not."""
    import gzip

    from tflm_export import find_min_arena
    from tflm_export.runtime.runner import run_model

    if not os.path.isfile(PLUGIN):
        print(f"bench_cortexm: no {PLUGIN}: run {BUILD} plugin")
        return 0
    fixtures = os.path.join(REPO, "tests", "fixtures", "cortexm")
    names = [n + suffix for n in MLPERF for suffix in ("", "_pruned")]
    print("| model | host latency (ms) | " + " | ".join(f"{c}/{k}" for c, k, _ in builds) + " |")
    print("|---|---:|" + "---:|" * len(builds))
    work = tempfile.mkdtemp(prefix="bench_insns_")
    for name in names:
        tflite = gzip.decompress(open(os.path.join(fixtures, name + ".tflite.gz"), "rb").read())
        path = os.path.join(work, name + ".tflite")
        open(path, "wb").write(tflite)
        inputs = make_inputs(tflite)
        run = run_model(tflite, find_min_arena(tflite).bytes, [x[None] for x in inputs], latency_runs=20)
        cells = []
        for core, kernels, elf in builds:
            one, three = (count_instructions(core, elf, path, n) for n in (1, 3))
            cells.append("–" if one is None or three is None else f"{(three - one) // 2:,}")
        print(f"| {name} | {np.median(run.latencies_s) * 1e3:.2f} | " + " | ".join(cells) + " |", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help=".tflite files (default: MLPerf Tiny + vgg, made here)")
    parser.add_argument("--builds", help="comma-separated <core>-<kernels> (default: every build present)")
    parser.add_argument("--models-dir", default=os.path.join(ROOT, "models"), help="where default models are cached")
    parser.add_argument("--instructions", action="store_true", help="instructions per Invoke() instead of arenas")
    args = parser.parse_args(argv)
    builds = built(args.builds.split(",") if args.builds else None)
    lacking = missing(builds)
    if lacking:
        print("bench_cortexm: the Cortex-M harness cannot run here; missing:")
        for line in lacking:
            print("  - " + line)
        print("See docs/CORTEXM.md. (The project works without it.)")
        return 0
    from tflm_export.micro.planner import align, predict_arena_from_tflite

    if args.instructions:
        return instructions(builds)
    models = args.models or default_models(args.models_dir)
    header = (f"{'model':<22} {'core':<14} {'kernels':<9} {'arena':>8} {'predicted':>9} {'used':>8} {'head':>8} "
              f"{'tail':>7} {'host':>8} {'host-arena':>10} {'outputs':>8}")
    print(header)
    print("-" * len(header))
    work = tempfile.mkdtemp(prefix="bench_cortexm_")
    for path in models:
        with open(path, "rb") as f:
            tflite = f.read()
        name = os.path.splitext(os.path.basename(path))[0]
        inputs = make_inputs(tflite)
        in_path = os.path.join(work, name + ".in")
        with open(in_path, "wb") as f:
            f.write(b"".join(x.tobytes() for x in inputs))
        host_arena, host_out = host(tflite, inputs)
        for core, kernels, elf in builds:
            out_path = os.path.join(work, f"{name}.{core}-{kernels}.out")
            r = run_probe(core, elf, os.path.abspath(path), in_path, out_path)
            if "error" in r or "arena" not in r:
                print(f"{name:<22} {core:<14} {kernels:<9} failed: {r.get('error')}")
                continue
            got = open(out_path, "rb").read() if os.path.isfile(out_path) else b""
            if got == host_out:
                match = "same"
            elif len(got) == len(host_out):
                diff = np.abs(np.frombuffer(got, np.int8).astype(int) - np.frombuffer(host_out, np.int8))
                match = f"max|d|={diff.max()}"
            else:
                match = "size!"
            head = r.get("recording_head", 0)  # the plan does not depend on the allocator
            tail = r["arena_used_bytes"] - head
            predicted = align(predict_arena_from_tflite(tflite, f"{core}/{kernels}").bytes)
            print(f"{name:<22} {core:<14} {kernels:<9} {r['arena']:>8} {predicted:>9} {r['arena_used_bytes']:>8} "
                  f"{head:>8} {tail:>7} {host_arena:>8} {r['arena'] - host_arena:>+10} {match:>8}",
                  flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
