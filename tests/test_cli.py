"""The keras-cprune CLI and safe model loading. Commands run in this process through `cli.main`, as
the console script calls it; a few run as their own process (`cli_process`), as a user's would."""
import contextlib
import io
import json
import os
import subprocess
import sys

import keras
import pytest

from keras_cprune import analyze
from keras_cprune.cli import main
from keras_cprune.zoo import vgg
from tflm_export.micro.planner import align


def cli(*args):
    """``keras-cprune ARGS`` in this process (no TensorFlow start-up per call): its exit status, stdout
    and stderr, as a finished process's."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    return subprocess.CompletedProcess(["keras-cprune", *args], code, out.getvalue(), err.getvalue())


def cli_process(*args):
    """``python -m keras_cprune.cli ARGS`` as its own process."""
    return subprocess.run([sys.executable, "-m", "keras_cprune.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def error_line(result) -> str:
    """The one line a command that failed on a project error prints (exit code 2), last on stderr."""
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "keras-cprune: error:" in line]
    assert len(errors) == 1 and lines[-1] == errors[0] and errors[0].startswith("keras-cprune: error: "), \
        result.stderr[-3000:]
    return errors[0]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("m") / "vgg.keras")
    vgg().save(path)
    return path


def test_analyze_json_and_table(model_file, tmp_path):
    result = cli("analyze", model_file, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["params"] == analyze(vgg()).params
    table = cli("analyze", model_file, "--plot", str(tmp_path / "c.png"))
    assert "conv0 (Conv2D)" in table.stdout and os.path.getsize(tmp_path / "c.png") > 1000


def test_prune_writes_model_and_plan_and_refuses_overwrite(model_file, tmp_path):
    out, plan = str(tmp_path / "p.keras"), str(tmp_path / "plan.json")
    result = cli("prune", model_file, "-o", out, "--mode", "FA", "--ratio", "0.5", "--plan", plan)
    assert result.returncode == 0, result.stderr
    pruned = keras.saving.load_model(out)
    assert pruned.count_params() == json.load(open(plan))["after"]["params"] < vgg().count_params()
    again = cli("prune", model_file, "-o", out)
    assert "exists already" in error_line(again)


def test_prune_to_a_ram_budget_measures_the_result_on_tflm(model_file, tmp_path):
    out, plan = str(tmp_path / "p.keras"), str(tmp_path / "plan.json")
    result = cli("prune", model_file, "-o", out, "--mode", "MA", "--ram", "12KB", "--plan", plan)
    assert result.returncode == 0, result.stderr
    after = json.load(open(plan))["after"]
    assert after["arena"]["bytes"] <= after["measured_arena"]["bytes"] <= 12 * 1024
    assert "measured" in result.stdout and result.stdout.count("budget search") == 1
    # --board: its build's arena (from the .tflite), --ram replacing its RAM, --margin in the fit
    on_board = cli("prune", model_file, "-o", str(tmp_path / "q.keras"), "--mode", "MA", "--board", "nano33ble",
                   "--ram", "12KB", "--margin", "512", "--plan", str(tmp_path / "q.json"))
    assert on_board.returncode == 0, on_board.stderr
    saved = json.load(open(tmp_path / "q.json"))
    checked = saved["after"]["measured_arena"]
    assert saved["target"] == "cortex-m4/cmsis_nn" and checked["source"] == "predicted"
    assert align(checked["bytes"] + 512) <= 12 * 1024 and "Arena of .tflite" in on_board.stdout


def test_the_command_line_prints_only_its_own_lines(model_file, tmp_path):
    """TensorFlow's start-up lines (CPU features, oneDNN, CUDA, the absl banner) stay off the console,
    with TensorFlow's own default log level (the other tests here run at level 3)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "keras_cprune.cli", "prune", model_file, "-o",
                             str(tmp_path / "p.keras"), "--mode", "MA", "--ram", "14KB"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    assert result.stdout.lstrip().startswith("budget search 100%"), result.stdout[:500]  # "\r" reads as "\n"


def test_prune_prices_a_per_tensor_dense_export_when_asked(model_file, tmp_path):
    from keras_cprune import estimate_arena

    plan = str(tmp_path / "plan.json")
    result = cli("prune", model_file, "-o", str(tmp_path / "p.keras"), "--per-tensor-dense", "--plan", plan)
    assert result.returncode == 0, result.stderr
    assert "per-tensor Dense export" in result.stdout and json.load(open(plan))["per_channel_dense"] is False
    before = json.load(open(plan))["before"]["arena"]["bytes"]
    assert before == estimate_arena(vgg(), assume_trained=True, per_channel_dense=False).bytes
    assert before < estimate_arena(vgg(), assume_trained=True).bytes  # no per-unit multipliers of 'fc', 'logits'
    table = cli("tradeoff", model_file, "--ratios", "0", "--modes", "PA", "--json", "--per-tensor-dense")
    assert table.returncode == 0, table.stderr
    assert json.loads(table.stdout)["points"][0]["arena_bytes"] == before


def test_lambda_model_needs_unsafe(tmp_path):
    inputs = keras.Input((4,))
    path = str(tmp_path / "lambda.keras")
    keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(keras.layers.Dense(3)(inputs))).save(path)
    refused = cli("analyze", path)
    assert "--unsafe" in error_line(refused)
    assert cli("analyze", path, "--unsafe").returncode == 0


@pytest.mark.parametrize("content,name,match", [
    (None, "missing.keras", "does not exist"),
    (b"not a zip", "corrupt.keras", "not a valid .keras archive"),
    (b"\x89HDF\r\n\x1a\n garbage", "corrupt.h5", "Could not load model file"),
    (b"x", "model.onnx", "unknown format"),
])
def test_bad_model_files(tmp_path, content, name, match):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    line = error_line(cli("analyze", str(path)))
    assert match in line and name in line


@pytest.mark.parametrize("args,says", [
    (("tradeoff", "{model}", "--modes", "PA,ZZ"), "Unknown pruning mode 'ZZ'"),
    (("prune", "{model}", "-o", "{tmp}/p.keras", "--ram", "1KB", "--no-verify"), "> 1,024 B"),  # impossible
    (("prune", "{model}", "-o", "{tmp}/p.keras", "--ram", "64KB", "--data", "{tmp}/missing.npy"), "missing.npy"),
    (("prune", "{model}", "-o", "{tmp}/p.keras", "--input-shape", "32,x"), "--input-shape"),
    (("export", "{model}", "-o", "{tmp}/out", "--data", "{tmp}/missing.npy"), "missing.npy"),
])
def test_project_errors_exit_2_with_one_line(model_file, tmp_path, args, says):
    line = error_line(cli(*(a.format(model=model_file, tmp=tmp_path) for a in args)))
    assert says in line, line
    assert not os.path.exists(tmp_path / "p.keras") and not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("args,says", [
    (("--headroom", "0.9"), "--headroom must be two numbers"),  # parsed by the CLI, before the data
    (("--headroom", "0.5,1.5"), "headroom=(0.5, 1.5)"),  # the tuner's own check
    (("--modes", "PA,ZZ"), "Unknown pruning mode 'ZZ'"),
])
def test_tuner_argument_errors_exit_2_with_one_line(model_file, tmp_path, args, says):
    line = error_line(cli("tune", model_file, "--dataset", "fashion-mnist", "--ram", "64KB", "--train-samples", "64",
                          "--val-samples", "16", "--test-samples", "16", "--out", str(tmp_path / "t"), *args))
    assert says in line, line


def test_a_multi_line_error_prints_as_one_line(monkeypatch, capsys):
    from keras_cprune import cli as module
    from keras_cprune.errors import TFLMRuntimeError

    def fail(args):
        raise TFLMRuntimeError("The worker failed (exit status 1):\n  Traceback...\n\n  last line")

    monkeypatch.setattr(module, "_analyze", fail)
    assert module.main(["analyze", "m.keras"]) == 2
    assert capsys.readouterr().err == ("keras-cprune: error: The worker failed (exit status 1): Traceback... "
                                       "last line\n")


def test_usage_errors_exit_2():
    for args, says in [((), "required"), (("prune", "x.keras"), "-o"),
                       (("prune", "x.keras", "-o", "y.keras", "--mode", "ZZ"), "'ZZ'")]:
        result = cli_process(*args)
        assert result.returncode == 2 and "usage: keras-cprune" in result.stderr and says in result.stderr, args


def test_tradeoff_json_and_plot(model_file, tmp_path):
    from keras_cprune import tradeoff

    png = str(tmp_path / "t.png")
    result = cli("tradeoff", model_file, "--ratios", "0,0.5", "--json", "--plot", png)
    assert result.returncode == 0, result.stderr
    # the same file: flash counts the tensor names in the flatbuffer, and a fresh vgg() may be named input_layer_1
    expected = tradeoff(keras.models.load_model(model_file), ratios=(0.0, 0.5)).to_dict()
    assert json.loads(result.stdout) == expected and os.path.getsize(png) > 1000
    assert "[0, 1)" in error_line(cli("tradeoff", model_file, "--ratios", "1.0"))


@pytest.mark.slow  # minutes of CPU: runs with --slow (in CI after the fast set)
def test_tune_searches_exports_the_best_and_plots(tmp_path):
    model_file, out = str(tmp_path / "small.keras"), tmp_path / "out"
    vgg(widths=(4, 8, 8)).save(model_file)  # 7,472 B predicted arena; pruning reaches 4,800 B at best
    args = ["tune", model_file, "--ram", "6KB", "--dataset", "fashion-mnist", "--trials", "2", "--epochs", "1",
            "--train-samples", "256", "--val-samples", "64", "--test-samples", "50", "--seed", "0", "--out", str(out)]
    refused = error_line(cli(*args))  # default --headroom 0.7,1.0: 0.7 x 6 KB = 4,300 B cannot be reached
    assert "headroom" in refused and "4,800" in refused
    result = cli(*args, "--headroom", "0.8,1.0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.load(open(out / "best" / "report.json"))
    assert report["fits"] and report["arena"]["bytes"] <= 6144
    assert "measured on the PyPI tflite-micro runtime" in result.stdout and "Board-fit search" in result.stdout
    best = keras.saving.load_model(str(out / "best.keras"))
    assert best.count_params() < vgg(widths=(4, 8, 8)).count_params()
    assert os.path.getsize(out / "trials.png") > 10_000 and os.path.isfile(out / "search" / "oracle.json")
