"""RAM a user gets back per board: the arena of the board's own TFLM build against the old constant.

Before issue 26 the firmware reserved ``kTensorArenaSize`` = host-measured arena + max(1 KB, 10%)
(the PyPI x86-64 runtime with reference kernels). Now it reserves the arena of the board's build
(core + CMSIS-NN), predicted exactly; where the truth table measured that build, the measurement
is printed beside it.

    python benchmarks/bench_board_arena.py
"""
from __future__ import annotations

import gzip
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
FIXTURES = os.path.join(REPO, "tests", "fixtures", "cortexm")
MODELS = ("resnet8", "ds_cnn", "mobilenet_v1_vww", "fc_autoencoder", "mobilenet_v2_0.35_96")
BOARDS = {"nano33ble": "cortex-m4/cmsis_nn", "stm32f746": "cortex-m7/cmsis_nn",
          "rp2040": "cortex-m0plus/cmsis_nn", "(Cortex-M55 board)": "cortex-m55/cmsis_nn"}


def old_constant(host: int) -> int:
    """The former kTensorArenaSize: host measurement + max(1 KB, 10%), rounded up to 16 B."""
    from tflm_export.micro.planner import align

    return align(host + max(1024, int(host * 0.10)))


def main() -> int:
    from tflm_export import find_min_arena
    from tflm_export.micro.planner import align, predict_arena_from_tflite

    measured = json.load(open(os.path.join(FIXTURES, "arenas.json")))["arenas"]
    print("| model | board | build | host (PyPI) | old kTensorArenaSize | board build, predicted | measured "
          "| RAM back |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for name in MODELS:
        tflite = gzip.decompress(open(os.path.join(FIXTURES, name + ".tflite.gz"), "rb").read())
        host = find_min_arena(tflite).bytes
        old = old_constant(host)
        for board, build in BOARDS.items():
            new = align(predict_arena_from_tflite(tflite, build).bytes)
            seen = measured.get(name, {}).get(build)
            print(f"| {name} | {board} | {build} | {host:,} | {old:,} | {new:,} | "
                  f"{f'{seen:,}' if isinstance(seen, int) else '–'} | {old - new:,} ({100 * (old - new) / old:.1f}%) |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
