"""The public surface: every exported name resolves, the error types share one base, and
`import keras_cprune` imports TensorFlow, Keras and KerasTuner only when a name needs them."""
import inspect
import os
import subprocess
import sys

import pytest

import keras_cprune
import tflm_export
from keras_cprune import errors
from tflm_export import errors as tflm_errors


@pytest.mark.parametrize("package", [keras_cprune, tflm_export], ids=lambda p: p.__name__)
def test_every_exported_name_resolves(package):
    missing = [name for name in package.__all__ if not hasattr(package, name)]
    assert not missing, f"{package.__name__}.__all__ names missing attributes: {missing}"
    assert len(set(package.__all__)) == len(package.__all__), "a name is listed twice"


def test_the_names_users_need_are_exported():
    from keras_cprune.graph.layers import unregister_layer
    from keras_cprune.training.schedules import PruningSchedule
    from keras_cprune.tuner.board_fit import BoardFitTuner
    from tflm_export.micro.planner import predict_arena_from_tflite

    assert keras_cprune.BoardFitTuner is BoardFitTuner
    assert keras_cprune.unregister_layer is unregister_layer
    assert keras_cprune.PruningSchedule is PruningSchedule and issubclass(keras_cprune.ConstantRatio, PruningSchedule)
    assert tflm_export.predict_arena_from_tflite is predict_arena_from_tflite
    with pytest.raises(AttributeError, match="has no attribute 'BoardFitTuners'"):
        keras_cprune.BoardFitTuners  # noqa: B018


def test_import_keras_cprune_imports_each_name_on_first_use():
    """No TensorFlow, Keras or KerasTuner until a name needs them (the CLI quiets TensorFlow first)."""
    code = ("import sys, keras_cprune, keras_cprune.cli; heavy = {'tensorflow', 'keras', 'keras_tuner'}; "
            "assert not heavy & set(sys.modules), heavy & set(sys.modules); "
            "from keras_cprune import prune; assert 'keras_tuner' not in sys.modules; "
            "keras_cprune.BoardFitTuner; assert 'keras_tuner' in sys.modules, 'BoardFitTuner did not load it'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_error_type_is_a_cprune_error_and_reexported():
    types = {name: obj for module in (errors, tflm_errors) for name, obj in vars(module).items()
             if inspect.isclass(obj) and issubclass(obj, BaseException)}
    assert not [name for name, obj in types.items() if not issubclass(obj, errors.CPruneError)]
    assert all(getattr(errors, name) is obj for name, obj in vars(tflm_errors).items() if name in types)
    # the new types stay catchable as the built-in ones they replaced
    assert issubclass(errors.UnknownOptionError, TypeError) and issubclass(errors.TunerError, ValueError)
    assert issubclass(errors.NoTrialError, RuntimeError) and issubclass(errors.MeasurementError, ValueError)


def test_a_bad_arena_step_is_a_measurement_error():
    with pytest.raises(errors.MeasurementError, match=r"`step`.*Received: step=0\.") as error:
        tflm_export.find_min_arena(b"", step=0)  # checked before the bytes are read or a runtime starts
    assert isinstance(error.value, ValueError)


def test_no_submodule_shadows_a_public_name():
    """Importing a submodule binds its name on the package: none may be named like an export
    (``keras_cprune.tradeoff`` must stay the function once the CLI imported its module)."""
    import importlib
    import pkgutil

    for package in (keras_cprune, tflm_export):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("_worker"):
                importlib.import_module(info.name)
        for name in package.__all__:
            value = getattr(package, name)
            assert not inspect.ismodule(value) or name in ("errors", "callbacks"), f"{package.__name__}.{name}"
