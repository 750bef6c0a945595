"""The main job (examples/fashion_mnist_pipeline.py) end to end on a tiny Fashion-MNIST subset."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

from keras_cprune.datasets import DEBIAN_DIR  # noqa: E402


@pytest.mark.skipif(not os.path.isdir(DEBIAN_DIR) and "FASHION_MNIST_DIR" not in os.environ,
                    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist); CI installs it")
def test_pipeline_artifacts_and_numbers(tmp_path):
    import keras

    from fashion_mnist_pipeline import run
    from keras_cprune import analyze

    table = run(str(tmp_path), ram="12KB", train_size=300, test_size=100, epochs=1)
    for name in ("plan.json", "table.json", "layer_complexity.png", "tradeoff.png", "baseline.keras", "pruned.keras"):
        assert os.path.getsize(tmp_path / name) > 0, name
    for name in ("baseline", "pruned"):
        folder = tmp_path / f"{name}_firmware"
        assert {f"{name}_data.cc", f"{name}_settings.h", "op_resolver.h", "report.json"} <= set(os.listdir(folder))
        report = json.load(open(folder / "report.json"))
        row = table[name]
        assert row["arena_bytes"] == report["arena"]["bytes"] and row["flash_bytes"] == report["flash_bytes"]
        model = keras.saving.load_model(tmp_path / f"{name}.keras")
        assert (row["params"], row["macs"]) == (analyze(model).params, analyze(model).macs)
        assert 0 <= row["int8_tflm_accuracy"] <= 1 and row["latency_ms"] > 0
    assert table["pruned"]["arena_bytes"] <= 12 * 1024 < table["baseline"]["arena_bytes"]
    assert json.load(open(tmp_path / "plan.json"))["after"]["params"] == table["pruned"]["params"]
