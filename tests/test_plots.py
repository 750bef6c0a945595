"""Figures people can read: layer shares of a 155-layer model at 1,200 px, spread over seeds, and
the plan table's peak-layer columns."""
import struct

import keras
import matplotlib.axes
import pytest

from keras_cprune import analyze
from keras_cprune.pruning.plan import PlanTotals, PruningPlan
from tflm_export.arena import ArenaFigure
from keras_cprune.plots import REPEATS_INPUT, TOP_LAYERS, layer_share_rows, plot_accuracy_tradeoff, spread
from models import vgg


def png_size(path) -> tuple:
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


@pytest.fixture(scope="module")
def mobilenet():
    return analyze(keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35, classes=10))


def test_large_model_shows_the_costly_layers_and_sums_the_rest(mobilenet, tmp_path):
    rows = layer_share_rows(mobilenet)
    assert len(mobilenet.layers) == 155 and len(rows) == TOP_LAYERS + 1
    label, other, peak = rows[-1]
    assert label == f"other ({155 - TOP_LAYERS} layers)" and not peak
    for attr in ("param_share", "flops_share", "memory_share"):  # nothing lost: the bars add up to the model
        assert sum(shares[attr] for _, shares, _ in rows) == pytest.approx(1.0)
    shown = {label.split(" (")[0]: label for label, _, _ in rows[:-1]}
    assert [label for label, _, peak in rows if peak] == ["block_1_pad (ZeroPadding2D)"] == [shown["block_1_pad"]]
    assert {"Conv_1", "Conv1", "block_1_expand", "block_16_project", "predictions"} <= set(shown)  # top params/MACs
    assert not [label for label in shown.values() if label.split(" (")[1][:-1] in REPEATS_INPUT]  # no BN/ReLU copies
    names = [r.name for r in mobilenet.layers]
    assert [names.index(name) for name in shown] == sorted(names.index(name) for name in shown)  # model order
    width, height = png_size(mobilenet.plot(str(tmp_path / "layers.png")))
    assert width == 1200 and height < 1400  # was 4,650 x 480


def test_small_model_shows_every_layer_with_a_share(tmp_path):
    report = analyze(vgg(keras))
    rows = layer_share_rows(report)
    assert [label.split(" (")[0] for label, _, _ in rows] == [r.name for r in report.layers]  # no "other"
    assert png_size(report.plot(str(tmp_path / "vgg.png")))[0] == 1200
    rows = layer_share_rows(report, top=4)
    # conv1, conv2: 46.6% of the MACs each, fc: 43.4% of the parameters; conv0's 17.5% of the memory is 5th
    assert [label for label, _, _ in rows] == ["bn0 (BatchNormalization)", "conv1 (Conv2D)", "conv2 (Conv2D)",
                                               "fc (Dense)", f"other ({len(report.layers) - 4} layers)"]
    assert rows[0][2] and report.peak_node == "bn0"  # the peak layer is kept though its memory does not rank


def test_spread_over_seeds():
    points = [{"params": 10, "accuracy": a} for a in (0.5, 0.7, 0.6)] + [{"params": 4, "accuracy": 0.4}]
    assert spread(points, "params") == ([4, 10], [0.4, pytest.approx(0.6)], [0.4, 0.5], [0.4, 0.7])


def test_accuracy_plot_draws_error_bars_for_repeated_runs(tmp_path, monkeypatch):
    drawn = []
    errorbar = matplotlib.axes.Axes.errorbar

    def record(self, x, y, yerr=None, **kwargs):
        drawn.append((kwargs["label"], list(x), [list(e) for e in yerr]))
        return errorbar(self, x, y, yerr=yerr, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", record)
    points = [dict(mode="MA", params=100, flops=200, peak_act_bytes_int8=50, accuracy=a) for a in (0.8, 0.9)]
    points.append(dict(mode="baseline", params=300, flops=600, peak_act_bytes_int8=90, accuracy=0.95))
    assert png_size(plot_accuracy_tradeoff(points, str(tmp_path / "acc.png")))[0] > 0
    assert drawn[:2] == [("MA", [100], [[pytest.approx(0.05)], [pytest.approx(0.05)]]),
                         ("baseline", [300], [[0.0], [0.0]])]
    assert len(drawn) == 6  # a series per mode in each of the 3 panels


def plan_with_peaks(before_peak, after_peak) -> PruningPlan:
    def totals(peak):
        return PlanTotals(params=1000, macs=5000, weight_bytes_int8=1100, act_bytes_f32=800, peak_act_bytes_int8=400,
                          peak_node="conv", arena=ArenaFigure(2048, "predicted", peak=peak), flash_bytes=3000)

    return PruningPlan("m", "MA", 0.5, "l1", "mean", (), totals(before_peak), totals(after_peak))


def test_plan_summary_peak_columns_are_separated_and_aligned():
    text = plan_with_peaks("block_1_depthwise", "block_1_expand").summary(print_fn=None)
    row = next(line for line in text.splitlines() if line.startswith("Arena peak at"))
    assert row.split() == ["Arena", "peak", "at", "block_1_depthwise", "block_1_expand"]  # was '...''...'
    header = text.splitlines()[1]
    assert row.index("block_1_expand") + len("block_1_expand") == header.index("after") + len("after")
    long = "a_very_long_custom_layer_name_from_a_user_model_42"
    row = next(line for line in plan_with_peaks(long, "b").summary(print_fn=None).splitlines()
               if line.startswith("Arena peak at"))
    assert row.split() == ["Arena", "peak", "at", "a_very_long_c…_user_model_42", "b"]  # both ends kept
