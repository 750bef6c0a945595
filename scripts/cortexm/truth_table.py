"""The Cortex-M arena truth table: models measured on every build of the harness, kept as test fixtures.

    python scripts/cortexm/truth_table.py make      # models -> tests/fixtures/cortexm/*.tflite.gz
    python scripts/cortexm/truth_table.py measure   # smallest arena on each new build (--all: every build) -> arenas.json
    python scripts/cortexm/truth_table.py table     # predicted vs measured, per model and build (markdown)

Models: the four MLPerf Tiny models, the zoo's vgg/resnet/mobilenetv2, MobileNetV2 a0.35 and
MobileNet a0.25 at 96x96 (keras.applications), the zoo's Conv1D-LSTM keyword spotter (24 and 64
units), each also pruned (MA, half the arena), and 50 random
branched graphs (tests/models.py), randomly initialised and converted to int8. The weights of
convolutions and dense layers are zeroed before measuring, so the files compress to a few KB: the
arena depends on shapes, not on values. tests/test_cortexm_targets.py checks the predictor against
arenas.json on a fresh machine, without the harness.
"""
import argparse
import gzip
import json
import os
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "cortexm")
ARENAS = os.path.join(FIXTURES, "arenas.json")
sys.path[:0] = [REPO, os.path.join(REPO, "benchmarks"), os.path.join(REPO, "tests")]

_WEIGHTS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2), "TRANSPOSE_CONV": (1, 3),
            "UNIDIRECTIONAL_SEQUENCE_LSTM": tuple(range(1, 9)) + tuple(range(12, 16))}


def zero_weights(tflite: bytes) -> bytes:
    """The flatbuffer with the filters and biases of its weighted ops set to zero (shapes,
    quantization and every other constant unchanged)."""
    from tflm_export.micro.flatbuffer import _schema

    data = bytearray(tflite)
    schema = _schema()
    model = schema.Model.GetRootAs(data, 0)
    subgraph = model.Subgraphs(0)
    for op in (subgraph.Operators(i) for i in range(subgraph.OperatorsLength())):
        code = model.OperatorCodes(op.OpcodeIndex())
        name = {v: k for k, v in vars(schema.BuiltinOperator).items()}.get(
            max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
        for k in _WEIGHTS.get(name, ()):
            if k < op.InputsLength() and op.Inputs(k) >= 0:
                buffer = model.Buffers(subgraph.Tensors(op.Inputs(k)).Buffer())
                if buffer.DataLength():
                    buffer.DataAsNumpy()[:] = 0  # a view into ``data``
    return bytes(data)


def _models(keras):
    from keras_cprune import zoo
    from models import random_branched_model

    builders = dict(zoo.MLPERF_TINY, vgg=zoo.vgg, resnet=zoo.resnet, mobilenetv2=zoo.mobilenetv2,
                    kws_lstm=zoo.kws_lstm, kws_lstm_64=lambda: zoo.kws_lstm(units=64))
    builders["mobilenet_v2_0.35_96"] = lambda: keras.applications.MobileNetV2(
        weights=None, input_shape=(96, 96, 3), alpha=0.35, classes=10, classifier_activation=None)
    builders["mobilenet_0.25_96"] = lambda: keras.applications.MobileNet(
        weights=None, input_shape=(96, 96, 3), alpha=0.25, classes=10, classifier_activation=None)
    for seed in range(50):
        builders[f"branched_{seed}"] = lambda seed=seed: random_branched_model(keras, seed)
    return builders


def make(names=None) -> None:
    """Convert each model (and its MA-pruned twin for the named architectures) into a fixture."""
    import keras

    import keras_cprune
    from keras_cprune.graph.clone import as_trained
    from tflm_export import convert

    os.makedirs(FIXTURES, exist_ok=True)
    for name, build in _models(keras).items():
        if names and name not in names:
            continue
        keras.utils.set_random_seed(0)
        model = build()
        variants = {name: model}
        if not name.startswith("branched_") or int(name.split("_")[1]) % 5 == 0:
            variants[name + "_pruned"] = keras_cprune.prune(model, "MA", 0.5)
        for variant, m in variants.items():
            path = os.path.join(FIXTURES, variant + ".tflite.gz")
            if os.path.exists(path):
                continue
            shape = (16,) + tuple(m.inputs[0].shape[1:])
            data = np.random.default_rng(0).uniform(0, 1, shape).astype("float32")
            tflite = zero_weights(convert(as_trained(m), data))
            with gzip.GzipFile(path, "wb", mtime=0) as f:
                f.write(tflite)
            print(f"{variant}: {len(tflite):,} B", flush=True)


def fixtures() -> dict:
    """{name: tflite bytes} of every fixture."""
    return {f[:-len(".tflite.gz")]: gzip.decompress(open(os.path.join(FIXTURES, f), "rb").read())
            for f in sorted(os.listdir(FIXTURES)) if f.endswith(".tflite.gz")}


def measure() -> None:
    """The probe's smallest arena of every fixture on every build present, merged into arenas.json."""
    import bench_cortexm as bench

    bench.TIMEOUT_S = 600  # a hang (e.g. a fault loop) is an error row, not an hour lost
    table = json.load(open(ARENAS)) if os.path.exists(ARENAS) else {"builds": {}, "arenas": {}}
    builds = [b for b in bench.built(None) if f"{b[0]}/{b[1]}" not in table["builds"] or "--all" in sys.argv]
    if not builds:
        sys.exit("truth_table: no new Cortex-M build present (--all measures every build again; docs/CORTEXM.md)")
    work = tempfile.mkdtemp(prefix="truth_table_")
    for core, kernels, elf in builds:
        info = open(os.path.join(os.path.dirname(elf), "BUILD_INFO")).read().splitlines()
        table["builds"][f"{core}/{kernels}"] = info
    for name, tflite in fixtures().items():
        model_path, in_path = os.path.join(work, name + ".tflite"), os.path.join(work, name + ".in")
        open(model_path, "wb").write(tflite)
        open(in_path, "wb").write(b"".join(x.tobytes() for x in bench.make_inputs(tflite)))
        row = table["arenas"].setdefault(name, {})
        for core, kernels, elf in builds:
            r = bench.run_probe(core, elf, model_path, in_path, os.path.join(work, "out.bin"))
            row[f"{core}/{kernels}"] = r["arena"] if "arena" in r else f"error: {r.get('error')}"
        print(name, row, flush=True)
    with open(ARENAS, "w") as f:
        json.dump(table, f, indent=1, sort_keys=True)
        f.write("\n")


def table() -> None:
    """Markdown: predicted vs measured per model and build."""
    from tflm_export.micro.planner import align, predict_arena_from_tflite

    measured = json.load(open(ARENAS))["arenas"]
    files = fixtures()
    builds = sorted({b for row in measured.values() for b in row})
    print("| model | " + " | ".join(builds) + " |")
    print("|---|" + "---:|" * len(builds))
    total = wrong = 0
    for name, row in measured.items():
        cells = []
        for build in builds:
            m = row.get(build)
            if not isinstance(m, int):
                cells.append("–")
                continue
            p = align(predict_arena_from_tflite(files[name], build).bytes)
            total, wrong = total + 1, wrong + (p != m)
            cells.append(f"{m:,}" if p == m else f"{m:,} (pred {p:,})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\n{total - wrong} of {total} rows predicted = measured")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("make", "measure", "table"))
    parser.add_argument("names", nargs="*", help="models to make (default: all)")
    parser.add_argument("--all", action="store_true", help="measure: every build, not only new ones")
    args = parser.parse_args()
    {"make": lambda: make(args.names), "measure": measure, "table": table}[args.step]()
