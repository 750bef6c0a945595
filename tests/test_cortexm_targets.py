"""The arena predicted for a Cortex-M build equals the one measured on that build.

The fixtures (tests/fixtures/cortexm) are int8 models whose smallest arena was measured under qemu
on TFLM built for each core with reference and CMSIS-NN kernels (scripts/cortexm/truth_table.py;
the builds' sources and commits are in arenas.json). No harness is needed to run these tests.
"""
import gzip
import json
import os

import pytest

from tflm_export.errors import BudgetError
from tflm_export.micro.flatbuffer import graph_from_tflite
from tflm_export.micro.op_graph import MicroGraph, MicroOp, MicroTensor, Window
from tflm_export.micro.planner import align, predict_arena, predict_arena_from_tflite
from tflm_export.micro.targets import TARGETS, Target, resolve_target

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "cortexm")
TABLE = json.load(open(os.path.join(FIXTURES, "arenas.json")))
ROWS = [(name, build, arena) for name, row in sorted(TABLE["arenas"].items()) for build, arena in sorted(row.items())
        if isinstance(arena, int)]  # else the build failed on the model: "error: ..." (docs/CORTEXM.md)


def _tflite(name: str) -> bytes:
    return gzip.decompress(open(os.path.join(FIXTURES, name + ".tflite.gz"), "rb").read())


def test_the_truth_table_covers_the_models_and_builds_the_issue_names():
    names = set(TABLE["arenas"])
    assert {"resnet8", "ds_cnn", "mobilenet_v1_vww", "fc_autoencoder", "vgg", "mobilenet_v2_0.35_96",
            "mobilenet_0.25_96", "resnet8_pruned"} <= names
    assert sum(n.startswith("branched_") and not n.endswith("_pruned") for n in names) >= 50
    assert {"cortex-m4/reference", "cortex-m4/cmsis_nn"} <= set(TABLE["builds"])


@pytest.mark.parametrize("name,build,measured", ROWS, ids=[f"{n}-{b}" for n, b, _ in ROWS])
def test_predicted_arena_equals_the_arena_measured_on_the_cortex_m_build(name, build, measured):
    figure = predict_arena_from_tflite(_tflite(name), build)
    assert figure.exact, figure.approximated
    assert align(figure.bytes) == measured


def test_the_board_build_is_smaller_than_the_host_but_cmsis_scratch_can_add():
    tflite = _tflite("vgg")
    host, ref, cmsis = (align(predict_arena_from_tflite(tflite, t).bytes)
                        for t in (None, "cortex-m4/reference", "cortex-m4/cmsis_nn"))
    assert ref < host and ref < cmsis


def _conv_graph(cin: int, k: int, stride=(1, 1), window=True) -> MicroGraph:
    tensors = (MicroTensor((1, 8, 8, cin)), MicroTensor((16, k, k, cin), constant=True, quant_channels=16),
               MicroTensor((16,), 4, constant=True, quant_channels=16), MicroTensor((1, 8, 8, 16)))
    op = MicroOp("CONV_2D", (0, 1, 2), (3,), Window(stride) if window else None)
    return MicroGraph(tensors, (op,), (0,), (3,))


def test_cmsis_nn_convolution_scratch_follows_the_core_family():
    # 3x3x64 im2col: 4 * align4(576) = 2,304 B on a DSP core, 4 * align16(576) on MVE, none for 1x1.
    replay = {t: predict_arena(_conv_graph(64, 3), t) for t in ("cortex-m4/reference", "cortex-m4/cmsis_nn",
                                                               "cortex-m55/cmsis_nn")}
    assert replay["cortex-m4/cmsis_nn"].head_bytes - replay["cortex-m4/reference"].head_bytes == 2304
    assert replay["cortex-m55/cmsis_nn"].head_bytes - replay["cortex-m4/reference"].head_bytes == 2304
    one = {t: predict_arena(_conv_graph(64, 1), t).head_bytes for t in ("cortex-m4/reference", "cortex-m4/cmsis_nn")}
    assert one["cortex-m4/reference"] == one["cortex-m4/cmsis_nn"]


def test_a_scratch_rule_without_the_ops_window_is_flagged_approximated():
    figure = predict_arena(_conv_graph(8, 3, window=False), "cortex-m4/cmsis_nn")
    assert not figure.exact and figure.approximated == ("CONV_2D without its window",)
    assert predict_arena(_conv_graph(8, 3, window=False), "cortex-m4/reference").exact


def test_targets_resolve_by_name_and_reject_unknown_ones():
    assert resolve_target(None).name == "host" and resolve_target("Cortex-M4/CMSIS_NN") is TARGETS["cortex-m4/cmsis_nn"]
    assert len(TARGETS) == 9
    with pytest.raises(BudgetError, match="Known targets"):
        resolve_target("cortex-m3")
    with pytest.raises(BudgetError, match="cortex-m0plus"):
        Target("esp32")


def test_flatbuffer_windows_are_read_from_the_builtin_options():
    graph = graph_from_tflite(_tflite("mobilenet_v1_vww"))
    assert graph.ops[0].window == Window((2, 2), (1, 1))
    pools = [op.window for op in graph.ops if op.op == "AVERAGE_POOL_2D"]
    assert pools and pools[0].filter == (3, 3)


# --------------------------------------------------------------------------- firmware flash
CODE_LINKED = json.load(open(os.path.join(FIXTURES, "code_linked.json")))
CODE_ROWS = [(n, b, v) for n, row in sorted(CODE_LINKED.items()) for b, v in sorted(row.items())]


@pytest.mark.parametrize("name,build,linked", CODE_ROWS, ids=[f"{n}-{b}" for n, b, _ in CODE_ROWS])
def test_predicted_tflm_code_is_within_one_percent_of_the_linked_image(name, build, linked):
    from tflm_export.firmware.code_size import predict_code_bytes
    from tflm_export.micro.flatbuffer import read_model

    predicted = predict_code_bytes(read_model(_tflite(name)).op_counts, build)
    assert abs(predicted - linked) <= 0.01 * linked


def test_code_shared_by_two_ops_is_counted_once():
    from tflm_export.firmware.code_size import predict_code_bytes

    base = predict_code_bytes([], "cortex-m4/cmsis_nn")
    conv, dw = (predict_code_bytes([op], "cortex-m4/cmsis_nn") for op in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    both = predict_code_bytes(["CONV_2D", "DEPTHWISE_CONV_2D"], "cortex-m4/cmsis_nn")
    assert max(conv, dw) < both < conv + dw - base


def test_flash_counts_the_firmware_image_on_a_board_and_the_model_on_request():
    from tflm_export.firmware.code_size import code_bytes, predict_code_bytes

    ops = {"CONV_2D", "FULLY_CONNECTED"}
    assert code_bytes(ops, "cortex-m4/cmsis_nn") == predict_code_bytes(ops, "cortex-m4/cmsis_nn")
    assert code_bytes(ops, "cortex-m4/cmsis_nn", flash="model") is None
    assert code_bytes(ops, "cortex-m7/reference") is None or "cortex-m7/reference" in TABLE["builds"]
    with pytest.raises(BudgetError, match="flash="):
        code_bytes(ops, "cortex-m4/cmsis_nn", flash="all")
    with pytest.raises(BudgetError, match="SVDF"):
        predict_code_bytes({"SVDF"}, "cortex-m4/cmsis_nn")
