"""Distiller: a real distillation fit of a pruned student, the loss formula by hand, config round trip."""
import keras
import numpy as np
import pytest

from keras_cprune import Distiller, prune, zoo
from keras_cprune.errors import ModelError, PruningError

CLASSES = 4
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def blobs(n, seed):
    """Separable synthetic images: one fixed random 16x16 pattern per class plus noise."""
    centers = np.random.default_rng(0).normal(size=(CLASSES, 16, 16, 1)).astype("float32")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    return (centers[y] + 0.8 * rng.normal(size=(n, 16, 16, 1))).astype("float32"), y


@pytest.fixture(scope="module")
def teacher():
    keras.utils.set_random_seed(0)
    model = zoo.vgg(input_shape=(16, 16, 1), widths=(8, 16), classes=CLASSES)
    model.compile(keras.optimizers.Adam(1e-3), LOSS)
    model.fit(*blobs(512, 1), epochs=2, batch_size=64, verbose=0)
    return model


def test_distill_pruned_student(teacher):
    x, y = blobs(512, 2)
    xv, yv = blobs(256, 3)
    student = prune(teacher, "PA", 0.5)  # kept filters keep the teacher's weights
    assert student.count_params() < teacher.count_params()
    start = [w.copy() for w in student.get_weights()]
    before = [w.copy() for w in teacher.get_weights()]  # kernels and BatchNorm moving statistics
    keras.utils.set_random_seed(0)
    distiller = Distiller(student, teacher, alpha=0.1, temperature=4.0)
    distiller.compile(keras.optimizers.Adam(1e-3), loss=LOSS, metrics=["accuracy"])
    loss_before = distiller.evaluate(x, y, verbose=0)[0]
    losses = distiller.fit(x, y, epochs=3, batch_size=64, verbose=0).history["loss"]
    assert losses[-1] < losses[0] and distiller.evaluate(x, y, verbose=0)[0] < loss_before
    assert all(np.array_equal(a, b) for a, b in zip(before, teacher.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(start, student.get_weights()))
    assert teacher.trainable and teacher.trainable_weights  # the user's teacher is left as it was
    assert not distiller.teacher.trainable_weights and len(distiller.trainable_weights) == len(student.trainable_weights)
    accuracy = np.mean(np.argmax(distiller.student.predict(xv, verbose=0), -1) == yv)
    assert accuracy > 0.8  # chance: 0.25
    np.testing.assert_allclose(distiller.predict(xv[:8], verbose=0), student.predict(xv[:8], verbose=0), atol=1e-6)


def test_alpha_one_is_the_student_loss(teacher):
    x, y = blobs(128, 4)
    student = prune(teacher, "FA", 0.5)
    distiller = Distiller(student, teacher, alpha=1.0)
    distiller.compile("adam", loss=LOSS)
    student.compile("adam", loss=LOSS)
    assert distiller.evaluate(x, y, verbose=0) == pytest.approx(student.evaluate(x, y, verbose=0), rel=1e-6)
    logits = student.predict(x, verbose=0)
    loss = float(distiller.compute_loss(x, y, logits, training=False))
    assert loss == pytest.approx(float(LOSS(y, logits)), rel=1e-5)


def test_distillation_loss_by_hand(teacher):
    """T² KL(p || q) with p, q the softmax at T of hand-written logits; 0 when they agree."""
    distiller = Distiller(prune(teacher, "PA", 0.5), teacher, alpha=0.0, temperature=2.0)
    t_logits = np.array([[2.0, 0.0, 0.0, 0.0], [0.0, 4.0, 0.0, 0.0]], "float32")
    s_logits = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 4.0, 0.0]], "float32")
    p = np.exp(t_logits / 2) / np.exp(t_logits / 2).sum(-1, keepdims=True)
    q = np.exp(s_logits / 2) / np.exp(s_logits / 2).sum(-1, keepdims=True)
    kl = (p * np.log(p / q)).sum(-1)
    assert float(distiller.distillation_loss(t_logits, s_logits)) == pytest.approx(4 * kl.mean(), rel=1e-5)
    weighted = float(distiller.distillation_loss(t_logits, s_logits, np.array([1.0, 0.0])))
    assert weighted == pytest.approx(4 * kl[0] / 2, rel=1e-5)  # Keras' sum_over_batch_size
    assert float(distiller.distillation_loss(t_logits, t_logits)) == pytest.approx(0.0, abs=1e-6)
    probs = Distiller(distiller.student, teacher, temperature=2.0, from_logits=False)
    softmax = lambda z: np.exp(z) / np.exp(z).sum(-1, keepdims=True)  # noqa: E731
    from_probs = float(probs.distillation_loss(softmax(t_logits), softmax(s_logits)))
    assert from_probs == pytest.approx(4 * kl.mean(), rel=1e-4)


def test_config_round_trip(teacher, tmp_path):
    x, _ = blobs(8, 5)
    distiller = Distiller(prune(teacher, "MA", 0.5), teacher, alpha=0.3, temperature=2.5)
    again = Distiller.from_config(distiller.get_config())
    assert (again.alpha, again.temperature, again.from_logits) == (0.3, 2.5, True)
    assert again.student.count_params() == distiller.student.count_params()
    distiller.save(tmp_path / "d.keras")
    loaded = keras.models.load_model(tmp_path / "d.keras")
    assert isinstance(loaded, Distiller) and loaded.temperature == 2.5 and not loaded.teacher.trainable
    np.testing.assert_allclose(loaded.predict(x, verbose=0), distiller.predict(x, verbose=0), atol=1e-5)


def test_bad_arguments(teacher):
    student = prune(teacher, "PA", 0.5)
    with pytest.raises(ModelError, match="Received: teacher="):
        Distiller(student, "teacher.keras")
    with pytest.raises(PruningError, match=r"alpha.*\[0, 1\].*Received: alpha=1.5"):
        Distiller(student, teacher, alpha=1.5)
    with pytest.raises(PruningError, match="temperature=0"):
        Distiller(student, teacher, temperature=0)
    other = zoo.vgg(input_shape=(16, 16, 1), widths=(4,), classes=CLASSES + 1)
    with pytest.raises(ModelError, match="same number of classes"):
        Distiller(other, teacher)
