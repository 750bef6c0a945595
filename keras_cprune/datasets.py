"""Fashion-MNIST loader: Debian's dataset-fashion-mnist files, else keras.datasets (online)."""
from __future__ import annotations

import gzip
import os

import numpy as np

from keras_cprune.errors import CPruneError

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class DatasetError(CPruneError, OSError):
    """The data set cannot be found or read."""


def _read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_fashion_mnist(directory: str | None = None, *, train_size: int | None = None,
                       test_size: int | None = None):
    """Fashion-MNIST as float32 images in [0, 1] and uint8 labels (class names: `CLASSES`).

    Reads Debian's ``dataset-fashion-mnist`` files offline, else downloads with
    ``keras.datasets.fashion_mnist``.

    Args:
        directory: folder of the four ``*-ubyte.gz`` files. Default None: ``$FASHION_MNIST_DIR``,
            else `DEBIAN_DIR`.
        train_size: keep the first this many training samples. Default None: all 60,000.
        test_size: keep the first this many test samples. Default None: all 10,000.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: images of shape ``(N, 28, 28, 1)``, labels ``(N,)``.

    Raises:
        DatasetError: the files are not found and the download fails.

    Example:

    ```python
    from keras_cprune.datasets import load_fashion_mnist

    (x, y), (x_test, y_test) = load_fashion_mnist(train_size=10_000)
    model.fit(x, y, epochs=3, validation_data=(x_test, y_test))
    ```
    """
    directory = directory or os.environ.get("FASHION_MNIST_DIR", DEBIAN_DIR)
    files = {split: (os.path.join(directory, f"{split}-images-idx3-ubyte.gz"),
                     os.path.join(directory, f"{split}-labels-idx1-ubyte.gz")) for split in ("train", "t10k")}
    if all(os.path.exists(p) for pair in files.values() for p in pair):
        arrays = {s: (_read_idx(i), _read_idx(l)) for s, (i, l) in files.items()}
        (xtr, ytr), (xte, yte) = arrays["train"], arrays["t10k"]
    else:
        try:
            import keras

            (xtr, ytr), (xte, yte) = keras.datasets.fashion_mnist.load_data()
        except Exception as exc:  # offline: no download possible
            raise DatasetError(
                f"Fashion-MNIST not found in {directory!r} and keras.datasets could not download it ({exc}). "
                "Install it with `apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu), set "
                "FASHION_MNIST_DIR to a folder with the four *-ubyte.gz files, or go online for keras.datasets."
            ) from exc

    def prep(x, y, n):
        x, y = x[:n], y[:n]
        return (x.astype("float32") / 255.0)[..., None], y.astype("uint8")

    return prep(xtr, ytr, train_size), prep(xte, yte, test_size)
