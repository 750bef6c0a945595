"""Flash of a firmware image: the TFLM code a model's op resolver pulls in, linked per core and kernels.

    python scripts/cortexm/code_size.py table     # per-op code bytes of each new build (--all: every build)
                                                  #   -> tflm_export/firmware/code_bytes.json
    python scripts/cortexm/code_size.py check     # linked image vs predicted, on the truth-table models

An image is `main()` creating a ``MicroMutableOpResolver`` with exactly the ops (the ``op_resolver.h``
tflm_export writes), a ``MicroInterpreter`` on a static arena, ``AllocateTensors()`` and ``Invoke()``,
linked with ``--gc-sections`` against the harness's ``libtensorflow-microlite.a`` (newlib-nano,
nosys); its flash is ``text + data`` by ``arm-none-eabi-size``, the model array excluded. The table
holds a base (no op) and each op's bytes over the base; a prediction sums them.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [REPO, os.path.join(REPO, "benchmarks"), os.path.dirname(os.path.abspath(__file__))]
ROOT = os.environ.get("CORTEXM_ROOT", "/work/cortexm")
TABLE = os.path.join(REPO, "tflm_export", "firmware", "code_bytes.json")
FLAGS = {"cortex-m0plus": ["-mcpu=cortex-m0plus", "-mfloat-abi=soft"],
         "cortex-m4": ["-mcpu=cortex-m4", "-mfloat-abi=soft"],
         "cortex-m7": ["-mcpu=cortex-m7", "-mfloat-abi=soft"],
         "cortex-m55": ["-mcpu=cortex-m55", "-mfloat-abi=softfp", "-fno-if-conversion", "-fno-if-conversion2"]}
MAIN = """#include <cstdint>
#include "op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
extern const unsigned char g_model[];
alignas(16) static uint8_t arena[4096];
int main() {
  static ModelOpResolver resolver;
  if (RegisterOps(resolver) != kTfLiteOk) return 1;
  tflite::MicroInterpreter interpreter(tflite::GetModel(g_model), resolver, arena, sizeof(arena));
  if (interpreter.AllocateTensors() != kTfLiteOk || interpreter.Invoke() != kTfLiteOk) return 2;
  return interpreter.output(0)->data.int8[0];
}
"""
MODEL_STUB = 'alignas(16) extern const unsigned char g_model[16] = {0};\n'


def image_bytes(build: str, ops, symbols: bool = False):
    """text + data of the image for ``ops`` on ``build`` ("cortex-m4/cmsis_nn"), the 16-byte model
    stub excluded; with ``symbols``, also {symbol: bytes} of its code and constant data."""
    from tflm_export.firmware.sources import _resolver

    core, kernels = build.split("/")
    lib = os.path.join(ROOT, "build", f"{core}-{kernels}", "lib", "libtensorflow-microlite.a")
    tflm = os.path.join(ROOT, "src", "tflite-micro")
    dl = os.path.join(tflm, "tensorflow/lite/micro/tools/make/downloads")
    with tempfile.TemporaryDirectory() as tmp:
        for file, text in (("op_resolver.h", _resolver(sorted(ops), "model")), ("main.cc", MAIN),
                           ("model.cc", MODEL_STUB)):
            open(os.path.join(tmp, file), "w").write(text)
        elf = os.path.join(tmp, "image.elf")
        cmd = (["arm-none-eabi-g++", "-mthumb", *FLAGS[core], "-Os", "-std=c++17", "-fno-rtti", "-fno-exceptions",
                "-fno-threadsafe-statics", "-ffunction-sections", "-fdata-sections", "-DTF_LITE_STATIC_MEMORY",
                f"-I{tmp}", f"-I{tflm}", f"-I{dl}/flatbuffers/include", f"-I{dl}/gemmlowp",
                os.path.join(tmp, "main.cc"), os.path.join(tmp, "model.cc"), lib,
                "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections", f"-Wl,-Map={elf}.map", "-lm",
                "-o", elf])
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        text, data = subprocess.run(["arm-none-eabi-size", elf], capture_output=True, text=True,
                                    check=True).stdout.splitlines()[1].split()[:2]
        sections = _kept_sections(open(elf + ".map").read())
    total = int(text) + int(data) - 16
    return (total, sections) if symbols else total


_RESOLVER_N = re.compile(r"MicroMutableOpResolverILj\d+EE")


def _kept_sections(link_map: str) -> dict:
    """{(object, section): bytes} of the code and constant input sections the linker kept, read
    from its map; the resolver's template instances are named without their op count."""
    found, pending = {}, None
    lines = link_map.split("Linker script and memory map", 1)[-1].splitlines()
    for line in lines:
        parts = line.split()
        if len(parts) == 1 and parts[0].startswith((".text.", ".rodata.", ".data.")):
            pending = parts[0]
            continue
        if pending and len(parts) == 3 and parts[0].startswith("0x"):
            parts = [pending] + parts
        pending = None
        if len(parts) == 4 and parts[0].startswith((".text", ".rodata", ".data")) and parts[1].startswith("0x"):
            size = int(parts[2], 16)
            obj = os.path.basename(parts[3]) if "(" in parts[3] else "main.o"  # main.cc: a temp object name
            if size and "g_model" not in parts[0]:
                found[(obj, _RESOLVER_N.sub("MicroMutableOpResolverILjNEE", parts[0]))] = size
    return found


def builds() -> list:
    import bench_cortexm as bench

    return [f"{core}/{kernels}" for core, kernels, _ in bench.built(None)]


def model_ops() -> dict:
    """{fixture name: its op types} of the truth-table models."""
    from tflm_export.micro.flatbuffer import read_model
    from truth_table import fixtures

    return {name: set(read_model(tflite).op_counts) for name, tflite in fixtures().items()}


def table() -> None:
    """Per build: the empty image's bytes and, per op, the symbols its registration adds (shared
    code is counted once when a prediction takes the union)."""
    ops = sorted(set().union(*model_ops().values()) | {"QUANTIZE", "DEQUANTIZE"})
    data = json.load(open(TABLE)) if os.path.exists(TABLE) else {}
    for build in (b for b in builds() if b not in data or "--all" in sys.argv):
        base, base_symbols = image_bytes(build, [], symbols=True)
        sizes, per_op = {}, {}
        for op in ops:
            _, found = image_bytes(build, [op], symbols=True)
            added = {"|".join(k): v for k, v in found.items() if k not in base_symbols}
            sizes.update(added)
            per_op[op] = sorted(added)
        names = sorted(sizes)
        index = {n: i for i, n in enumerate(names)}
        data[build] = {"base": base, "symbol_bytes": [sizes[n] for n in names],
                       "ops": {op: [index[n] for n in syms] for op, syms in per_op.items()}}
        print(build, base, {op: sum(sizes[n] for n in syms) for op, syms in per_op.items()}, flush=True)
    with open(TABLE, "w") as f:
        json.dump(data, f, sort_keys=True, separators=(",", ":"))
        f.write("\n")


def check() -> None:
    """Linked image vs prediction on the truth-table models; the linked sizes go to
    tests/fixtures/cortexm/code_linked.json (the suite checks the prediction against them)."""
    from tflm_export.firmware.code_size import code_builds, predict_code_bytes

    linked_path = os.path.join(REPO, "tests", "fixtures", "cortexm", "code_linked.json")
    linked_all = json.load(open(linked_path)) if os.path.exists(linked_path) else {}
    print("| model | build | linked | predicted | error |\n|---|---|---:|---:|---:|")
    for name, ops in model_ops().items():
        if name.startswith("branched_") and name not in ("branched_0", "branched_1"):
            continue
        for build in (b for b in builds() if b in code_builds()):
            linked, predicted = image_bytes(build, ops), predict_code_bytes(ops, build)
            linked_all.setdefault(name, {})[build] = linked
            print(f"| {name} | {build} | {linked:,} | {predicted:,} | {predicted - linked:+,} "
                  f"({100 * (predicted - linked) / linked:+.2f}%) |", flush=True)
    with open(linked_path, "w") as f:
        json.dump(linked_all, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    {"table": table, "check": check}[sys.argv[1]]()
