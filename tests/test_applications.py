"""Every keras.applications model prunes in each mode: builds, predicts, shrinks where aimed."""
import keras
import numpy as np
import pytest

from keras_cprune import analyze, prune

APPS = {
    "MobileNet": keras.applications.MobileNet,
    "MobileNetV2": keras.applications.MobileNetV2,
    "MobileNetV3Small": keras.applications.MobileNetV3Small,
    "MobileNetV3Large": keras.applications.MobileNetV3Large,
    "ResNet50": keras.applications.ResNet50,
    "ResNet50V2": keras.applications.ResNet50V2,
    "EfficientNetB0": keras.applications.EfficientNetB0,
    "DenseNet121": keras.applications.DenseNet121,
    "NASNetMobile": keras.applications.NASNetMobile,  # 200 s of the suite's CPU: --slow only
}
FAST = {"MobileNet"}  # one keras.applications net in the fast set; the rest run with --slow
TARGET = {"PA": "params", "FA": "macs", "MA": "act_bytes_f32"}


@pytest.mark.parametrize("name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in APPS])
def test_application_prunes_in_each_mode(name):
    model = APPS[name](weights=None, input_shape=(64, 64, 3), classes=10)
    base = analyze(model)
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    cuts = {}
    for mode in ("PA", "FA", "MA"):
        for ratio in (0.3, 0.6):
            pruned = prune(model, mode, ratio)
            assert pruned.predict(x, verbose=0).shape == (2, 10)
            report = analyze(pruned)
            assert report.params < base.params and report.act_bytes_f32 <= base.act_bytes_f32
            cuts[mode, ratio] = {k: 1 - getattr(report, k) / getattr(base, k) for k in TARGET.values()}
        assert cuts[mode, 0.6][TARGET[mode]] > cuts[mode, 0.3][TARGET[mode]]
    # each mode cuts its own resource at least as much as the mode aimed at another resource
    assert cuts["PA", 0.6]["params"] >= cuts["MA", 0.6]["params"]
    assert cuts["MA", 0.6]["act_bytes_f32"] >= cuts["PA", 0.6]["act_bytes_f32"]
