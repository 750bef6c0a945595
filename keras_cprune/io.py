"""Loading user model files safely and writing results atomically."""
from __future__ import annotations

import os
import tempfile
import zipfile
from contextlib import contextmanager

from keras_cprune.errors import ModelFileError, OutputPathError

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_model(path: str, *, unsafe: bool = False):
    """Load a ``.keras``/``.h5`` model (not compiled) with Keras' ``safe_mode``.

    Args:
        path: the model file, ending ``.keras``, ``.h5`` or ``.hdf5``.
        unsafe: allow Lambda layers, whose Python code runs on loading. Default False.

    Returns:
        The Keras model.

    Raises:
        ModelFileError: the file is missing, of another format, corrupt, or needs ``unsafe``.
    """
    import keras

    if not os.path.isfile(path):
        raise ModelFileError(f"Model file {path!r} does not exist. Pass the path of a .keras or .h5 file.")
    if not path.endswith(MODEL_SUFFIXES):
        raise ModelFileError(f"Model file {path!r} has an unknown format; expected one of {MODEL_SUFFIXES}.")
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        raise ModelFileError(f"Model file {path!r} is not a valid .keras archive (corrupt or truncated). "
                             "Save it again with `model.save('model.keras')`.")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except ValueError as exc:
        if "safe_mode" in str(exc):
            raise ModelFileError(
                f"Model file {path!r} contains a Lambda layer whose Python code would have to be executed to "
                "load it. If you trust this file, pass --unsafe (CLI) or unsafe=True."
            ) from exc
        raise ModelFileError(f"Could not load model file {path!r}: {exc}") from exc
    except (OSError, KeyError, TypeError) as exc:
        raise ModelFileError(f"Could not load model file {path!r} (corrupt or not a Keras model): {exc}") from exc


@contextmanager
def atomic_path(path: str, *, overwrite: bool = False):
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds.

    Args:
        path: the file to write.
        overwrite: replace an existing ``path``. Default False.

    Yields:
        The temporary path to write to (same folder and suffix as ``path``).

    Raises:
        OutputPathError: ``path`` exists (without ``overwrite``), its folder is missing or not
            writable, or the move fails.
    """
    if os.path.exists(path) and not overwrite:
        raise OutputPathError(f"Output {path!r} exists already. Choose another path or allow overwriting.")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OutputPathError(f"Output folder {directory!r} does not exist. Create it first.")
    suffix = os.path.splitext(path)[1]
    try:
        fd, tmp = tempfile.mkstemp(prefix=".cprune-", suffix=suffix, dir=directory)
    except OSError as exc:
        raise OutputPathError(f"Cannot write in folder {directory!r}: {exc}. Choose a folder you can write to "
                              "or fix its permissions.") from exc
    os.close(fd)
    os.unlink(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputPathError(f"Could not write {path!r}: {exc}. Nothing was written.") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_model(model, path: str, *, overwrite: bool = False) -> str:
    """Save ``model`` to ``path`` atomically; never leaves a partial file.

    Args:
        model: the Keras model.
        path: the file to write, ending ``.keras``, ``.h5`` or ``.hdf5``.
        overwrite: replace an existing ``path``. Default False.

    Returns:
        ``path``.

    Raises:
        OutputPathError: another suffix, ``path`` exists (without ``overwrite``), or it cannot be
            written.
    """
    if not path.endswith(MODEL_SUFFIXES):
        raise OutputPathError(f"Output {path!r} must end with one of {MODEL_SUFFIXES}.")
    with atomic_path(path, overwrite=overwrite) as tmp:
        model.save(tmp)
    return path
