"""The MLPerf Tiny reference architectures of keras_cprune.zoo: sizes checked against hand arithmetic.

Source: github.com/mlcommons/tiny, benchmark/training/{image_classification/keras_model.py,
keyword_spotting/keras_model.py, visual_wake_words/vww_model.py, anomaly_detection/keras_model.py}.
Conventions: Conv/Dense params = kernel + bias (every reference conv and dense has a bias);
BatchNormalization params = 4 x channels (gamma, beta, moving mean, moving variance), which both
``count_params()`` and ``analyze`` count; MACs = output positions x kernel size x input channels x
filters (depthwise: x 1 input channel), BatchNorm/pooling/activations/adds count 0.
The four parameter totals below also equal the weight totals of the pre-trained reference models
stored in that repository (pretrainedResnet.h5, kws_ref_model/, vww_96.h5, ad01.h5).
"""
import os
import subprocess
import sys

import pytest

import keras_cprune
from keras_cprune.zoo import MLPERF_TINY, ds_cnn, fc_autoencoder, mobilenet_v1_vww, resnet8

# ResNet-8, 32x32x3 -> 10; 16/32/64 filters; 3x3 'same' convs; stacks 2 and 3 start with stride 2
# and add a 1x1 stride-2 projection conv (no BN) on the shortcut.
#   stem conv 3x3x3x16+16 = 448, BN 64                                        -> 512
#   stack 1: 2 x (3x3x16x16+16 = 2320) + 2 BN x 64                            -> 4,768
#   stack 2: 3x3x16x32+32 = 4640, 3x3x32x32+32 = 9248, 1x1x16x32+32 = 544, 2 BN x 128 -> 14,688
#   stack 3: 3x3x32x64+64 = 18496, 3x3x64x64+64 = 36928, 1x1x32x64+64 = 2112, 2 BN x 256 -> 58,048
#   dense 64x10+10 = 650                         total 512+4768+14688+58048+650 = 78,666
#   (78,186 trainable: the 7 BNs hold 2 x (16x3 + 32x2 + 64x2) = 480 moving statistics)
# MACs: stem 32x32 x 27 x 16 = 442,368; stack 1: 2 x 32x32 x 144 x 16 = 4,718,592;
#   stack 2 (16x16 out): 256 x 144 x 32 = 1,179,648 + 256 x 288 x 32 = 2,359,296 + 256 x 16 x 32 = 131,072;
#   stack 3 (8x8 out):    64 x 288 x 64 = 1,179,648 +  64 x 576 x 64 = 2,359,296 +  64 x 32 x 64 = 131,072;
#   dense 64 x 10 = 640.        total 442368+4718592+2x3670016+640 = 12,501,632 (~12.5 M)
RESNET8_PARAMS, RESNET8_MACS = 78_666, 12_501_632

# DS-CNN (small), 49x10x1 MFCC -> 12; conv 10x4 stride 2 'same' -> 25x5x64; 4 x (3x3 depthwise + BN
# + ReLU, 1x1 conv 64 + BN + ReLU); average pool (24, 5) -> 1x1x64; dense 12.
#   conv 10x4x1x64+64 = 2624, BN 256                                        -> 2,880
#   4 x (dw 3x3x64+64 = 640, BN 256, pw 64x64+64 = 4160, BN 256 = 5,312)    -> 21,248
#   dense 64x12+12 = 780                         total 2880+21248+780 = 24,908 (23,756 trainable)
# MACs: conv 25x5 x 40 x 64 = 320,000; 4 x (dw 125 x 9 x 64 = 72,000 + pw 125 x 64 x 64 = 512,000);
#   dense 768.                  total 320000+4x584000+768 = 2,656,768 (~2.7 M)
DS_CNN_PARAMS, DS_CNN_MACS = 24_908, 2_656_768

# MobileNetV1 alpha 0.25, 96x96x3 -> 2; stem conv 3x3/2 8 filters (48x48); 13 depthwise-separable
# blocks (cin -> cout, dw stride): 8->16 /1, 16->32 /2, 32->32, 32->64 /2, 64->64, 64->128 /2,
# 5 x 128->128, 128->256 /2, 256->256; average pool 3x3; dense 2.
#   stem 3x3x3x8+8 = 224, BN 32 -> 256; block = dw 10cin + BN 4cin + pw cin.cout+cout + BN 4cout
#   = 14cin + cin.cout + 5cout: 320, 896, 1632, 2816, 5312, 9728, 5 x 18816, 35840, 70400 = 221,024
#   dense 256x2+2 = 514                          total 256+221024+514 = 221,794
# MACs (output positions x ...): stem 2304 x 27 x 8 = 497,664; blocks (dw + pw):
#   48x48: 165888+294912; 24x24: 82944+294912, 165888+589824; 12x12: 41472+294912, 82944+589824;
#   6x6: 20736+294912, 5 x (41472+589824); 3x3: 10368+294912, 20736+589824; dense 512
#                               total 7,489,664 (~7.5 M)
VWW_PARAMS, VWW_MACS = 221_794, 7_489_664

# Dense autoencoder 640 -> 128 x4 -> 8 -> 128 x4 -> 640, each hidden Dense + BN + ReLU, linear output.
#   640x128+128 = 82,048; 3 x (128x128+128 = 16,512); 128x8+8 = 1,032; 8x128+128 = 1,152;
#   3 x 16,512; 128x640+640 = 82,560; BN 8 x 512 + 32 = 4,128
#   total 82048+49536+1032+1152+49536+82560+4128 = 269,992 (~270 k)
# MACs: 640x128 + 3x128x128 + 128x8 + 8x128 + 3x128x128 + 128x640
#   = 81920+49152+1024+1024+49152+81920 = 264,192 (~0.26 M)
AE_PARAMS, AE_MACS = 269_992, 264_192

CASES = {
    "resnet8": (resnet8, RESNET8_PARAMS, RESNET8_MACS, (None, 32, 32, 3), (None, 10)),
    "ds_cnn": (ds_cnn, DS_CNN_PARAMS, DS_CNN_MACS, (None, 49, 10, 1), (None, 12)),
    "mobilenet_v1_vww": (mobilenet_v1_vww, VWW_PARAMS, VWW_MACS, (None, 96, 96, 3), (None, 2)),
    "fc_autoencoder": (fc_autoencoder, AE_PARAMS, AE_MACS, (None, 640), (None, 640)),
}

_models = {}


def _model(name):
    if name not in _models:
        _models[name] = MLPERF_TINY[name]()
    return _models[name]


def test_registry():
    assert set(MLPERF_TINY) == set(CASES)
    assert all(MLPERF_TINY[name] is CASES[name][0] for name in CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_params_macs_and_shapes(name):
    _, params, macs, in_shape, out_shape = CASES[name]
    model = _model(name)
    assert model.name == name
    assert model.count_params() == params
    assert tuple(model.input_shape) == in_shape
    assert tuple(model.output_shape) == out_shape
    report = keras_cprune.analyze(model)
    assert report.not_analysed == []
    assert report.params == params
    assert report.macs == macs


def test_resnet8_shortcut_created_after_main_branch():
    names = [layer.name for layer in _model("resnet8").layers]
    for stack in (2, 3):
        assert names.index(f"s{stack}_conv1") < names.index(f"s{stack}_conv2") < names.index(f"s{stack}_shortcut")
    assert "s1_shortcut" not in names  # identity shortcut in the first stack


def test_builder_arguments():
    model = resnet8(input_shape=(64, 64, 3), classes=5, name="r")
    assert model.name == "r" and model.output_shape == (None, 5)
    assert model.get_layer("pool").pool_size == (16, 16)  # pools the whole final map
    model = mobilenet_v1_vww(alpha=0.5, classes=3)
    assert model.get_layer("conv0").filters == 16 and model.get_layer("pw13").filters == 512
    assert model.output_shape == (None, 3)
    model = fc_autoencoder(input_dim=320)
    assert model.input_shape == model.output_shape == (None, 320)
    assert ds_cnn(classes=35).output_shape == (None, 35)


@pytest.mark.parametrize("name", sorted(CASES))
def test_prune_keeps_io_shapes(name):
    model = _model(name)
    pruned = keras_cprune.prune(model, "MA", 0.5)
    assert pruned.input_shape == model.input_shape
    assert pruned.output_shape == model.output_shape
    assert pruned.count_params() < model.count_params()


@pytest.mark.slow  # minutes of CPU: runs with --slow (in CI after the fast set)
def test_builds_under_tf_keras():
    """The same builders with ``keras=tf_keras`` (own interpreter: Keras 2 and 3 must not mix)."""
    code = ("import tf_keras\nfrom keras_cprune.zoo import MLPERF_TINY\n"
            "print(*[MLPERF_TINY[n](keras=tf_keras).count_params() for n in sorted(MLPERF_TINY)])")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=here, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = [CASES[name][1] for name in sorted(CASES)]
    assert [int(v) for v in result.stdout.split()[-4:]] == expected
