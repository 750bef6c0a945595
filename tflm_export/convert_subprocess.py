"""Conversion of a Keras 3 model that runs on another backend (JAX, PyTorch) in a TensorFlow process.

The TFLite converter traces the model with TensorFlow: given a JAX- or PyTorch-backend model it
keeps float or variable ops (READ_VARIABLE, ASSIGN_VARIABLE...). So `tflm_export.convert` saves
such a model (``model.save`` to a temporary ``.keras``) with its calibration samples and runs the
same `convert` in a child interpreter (``sys.executable``) with ``KERAS_BACKEND=tensorflow``; the
child sends back the flatbuffer, or its error's type and message, raised here as the same type.

Custom objects: the child imports the class (or function) of every object registered with
``keras.saving.register_keras_serializable`` (or added to ``keras.saving.get_custom_objects()``)
and of every ``custom_objects`` entry from its module, found on the parent's ``sys.path``. Not
supported: objects defined in ``__main__`` (a script or notebook) or inside a function, and
objects given only through a ``keras.saving.custom_object_scope``; define them in an importable
module. Lambda layers load (the child trusts the file it was handed: ``safe_mode=False``); as
Keras loads a ``lambda``'s bytecode without its globals, the child gives it the modules its code
names (``keras``, ``ops``, ``np``, ``tf``...), but no other global (a constant, a function).
The input tensors keep their names, so the flatbuffer is byte for byte the one TensorFlow makes.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import types

import numpy as np

from tflm_export import errors
from tflm_export.errors import ConversionError
from tflm_export.recurrent import all_layers

MODEL, SAMPLES, JOB, RESULT, FLATBUFFER = "model.keras", "samples.npy", "job.json", "result.json", "model.tflite"
# What the child runs: `run_job` on the folder, with the very `convert` the caller called.
CHILD_CODE = ("import sys; from tflm_export.convert import convert; "
              "from tflm_export.convert_subprocess import run_job; sys.exit(run_job(sys.argv[1], convert))")


def needs_tensorflow_process(keras) -> bool:
    """True for a Keras 3 model (``keras`` is the module that built it) on a backend other than TensorFlow."""
    return keras.__name__ == "keras" and keras.backend.backend() != "tensorflow"


def convert_in_tensorflow_process(model, samples: np.ndarray, options: dict, custom_objects: dict | None = None) -> bytes:
    """The int8 flatbuffer of ``model`` converted by `convert` in a TensorFlow-backend child process.

    Args:
        model: a Keras 3 model on any backend; it must be savable (``model.save``).
        samples: the calibration inputs, float32 ``(N, *input_shape)``.
        options: the other keywords of `convert` (``io_dtype``, ``num_samples``, ``per_channel_dense``).
        custom_objects: ``{name: class or function}`` the saved model needs besides the registered ones.

    Raises:
        ConversionError (or the type the child raised, with its message): the model cannot be
            saved or loaded there, or the conversion failed.
    """
    import keras

    paths, unimportable = _object_paths(keras, custom_objects)
    with tempfile.TemporaryDirectory(prefix="tflm_export_convert_") as folder:
        try:
            model.save(os.path.join(folder, MODEL))
        except Exception as exc:  # a subclassed model without get_config, an unserializable layer...
            raise ConversionError(f"Model {model.name!r} runs on the {keras.backend.backend()} backend, so it is "
                                  f"converted in a TensorFlow process from a saved copy, but `model.save` failed: "
                                  f"{type(exc).__name__}: {exc}. Make it savable (get_config on custom layers, "
                                  "keras.saving.register_keras_serializable).") from exc
        np.save(os.path.join(folder, SAMPLES), np.asarray(samples, dtype="float32"))
        job = {"options": options, "objects": paths, "lambda_modules": _lambda_modules(model),
               "input_names": [t.name for t in model.inputs]}
        with open(os.path.join(folder, JOB), "w", encoding="utf-8") as f:
            json.dump(job, f)
        child = subprocess.run([sys.executable, "-c", CHILD_CODE, folder], env=_child_env(),
                               capture_output=True, text=True, check=False)
        return _result(folder, child, model.name, unimportable)


def _object_paths(keras, custom_objects: dict | None) -> tuple[dict, list]:
    """``{name: [module, qualname]}`` of the registered and given custom objects the child can
    import, and the descriptions of those it cannot (``__main__``, local)."""
    objects = {**keras.saving.get_custom_objects(), **(custom_objects or {})}
    paths, unimportable = {}, []
    for name, obj in objects.items():
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if not module or not qualname or module == "__main__" or "<locals>" in qualname:
            unimportable.append(f"{name} ({module}.{qualname})")
        else:
            paths[name] = [module, qualname]
    return paths, unimportable


def _lambda_modules(model) -> dict:
    """``{global name: module name}`` of the modules the ``lambda`` functions of ``model``'s Lambda
    layers (nested models included) refer to by a global name, e.g. ``{"keras": "keras"}``."""
    modules = {}
    for layer in all_layers(model):
        function = getattr(layer, "function", None)
        if type(layer).__name__ != "Lambda" or getattr(function, "__name__", None) != "<lambda>":
            continue
        for name in _global_names(function.__code__):
            value = function.__globals__.get(name)
            if isinstance(value, types.ModuleType):
                modules[name] = value.__name__
    return modules


def _global_names(code) -> set:
    """The global names ``code`` and the code objects nested in it read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _child_env() -> dict:
    """The caller's environment with Keras on TensorFlow (CPU, quiet) and the caller's ``sys.path``,
    so the child imports the same modules (custom layers, this package) as the caller."""
    path = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
    return dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
                PYTHONPATH=os.pathsep.join(dict.fromkeys(path)))


def _result(folder: str, child: subprocess.CompletedProcess, name: str, unimportable: list) -> bytes:
    """The flatbuffer the child wrote, or its error raised here with the same type and message."""
    path = os.path.join(folder, RESULT)
    if not os.path.exists(path):
        lines = [line for line in (child.stderr or "").splitlines() if line.strip()]
        raise ConversionError(f"The TensorFlow process converting {name!r} ended (exit status {child.returncode}) "
                              f"without a result. Its last output: {' | '.join(lines[-5:]) or 'none'}")
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    if result.get("ok"):
        with open(os.path.join(folder, FLATBUFFER), "rb") as f:
            return f.read()
    message = result["message"]
    if result.get("stage") == "load" and unimportable:
        message += (f" These custom objects cannot be loaded there: {', '.join(unimportable)}; define them in an "
                    "importable module (not __main__ nor inside a function).")
    error = getattr(errors, result.get("type", ""), None)
    if not (isinstance(error, type) and issubclass(error, errors.CPruneError)):
        error = ConversionError
    raise error(message)


def run_job(folder: str, convert) -> int:
    """The child's side: load the saved model, ``convert`` it and write the flatbuffer, or the
    error's type and message, in ``folder``. Returns the exit status (0 when a result was written)."""
    with open(os.path.join(folder, JOB), encoding="utf-8") as f:
        job = json.load(f)
    try:
        _give_lambdas(job["lambda_modules"])
        model = _load(os.path.join(folder, MODEL), job["objects"])
        for tensor, name in zip(model.inputs, job["input_names"]):
            tensor.name = name  # the converter names the input tensor after it
    except Exception as exc:  # unknown custom class, bad file...
        import keras

        return _write(folder, {"type": "ConversionError", "stage": "load", "message": (
            f"The TensorFlow process (Keras {keras.__version__}) could not load the saved model to convert it: "
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:600]} Register its custom classes with "
            "keras.saving.register_keras_serializable or pass them to convert(..., custom_objects={name: class}).")})
    try:
        flatbuffer = convert(model, np.load(os.path.join(folder, SAMPLES)), **job["options"])
    except errors.CPruneError as exc:
        return _write(folder, {"type": type(exc).__name__, "stage": "convert", "message": str(exc)})
    except Exception as exc:  # an error convert does not type (a custom layer's call...)
        return _write(folder, {"type": "ConversionError", "stage": "convert", "message": (
            f"The int8 conversion of {model.name!r} failed in the TensorFlow process: {type(exc).__name__}: {exc}")})
    with open(os.path.join(folder, FLATBUFFER), "wb") as f:
        f.write(flatbuffer)
    return _write(folder, {"ok": True})


def _load(path: str, paths: dict):
    """The saved model, with the custom objects of ``paths`` imported (those that fail to import are
    left out: the model may not need them; loading says which class it misses)."""
    import keras

    objects = {}
    for name, (module, qualname) in paths.items():
        try:
            obj = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except Exception:  # noqa: BLE001  (an object of the caller's that this child cannot import)
            continue
        objects[name] = obj
    return keras.saving.load_model(path, custom_objects=objects, compile=False, safe_mode=False)


def _give_lambdas(modules: dict) -> None:
    """Make ``modules`` globals of the functions Keras loads from a Lambda's bytecode (it gives them
    the globals of ``keras.src.utils.python_utils``; this process only converts, then ends)."""
    if not modules:
        return
    from keras.src.utils import python_utils

    for name, module in modules.items():
        try:
            python_utils.__dict__.setdefault(name, importlib.import_module(module))
        except ImportError:  # the model may not need it; loading says so
            continue


def _write(folder: str, result: dict) -> int:
    with open(os.path.join(folder, RESULT), "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0
