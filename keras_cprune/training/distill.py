"""Knowledge distillation: train a pruned student against the outputs of its unpruned teacher.

    distiller = Distiller(student=pruned, teacher=model, alpha=0.1, temperature=4.0)
    distiller.compile("adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    distiller.fit(x, y, epochs=3)
    distiller.student.save("student.keras")   # the model to export

Keras 3, any backend: the loss is written with ``keras.ops`` only.
"""
from __future__ import annotations

import keras
from keras import ops

from keras_cprune.errors import ModelError, PruningError


def _check_model(name: str, model) -> None:
    if not isinstance(model, keras.Model):
        raise ModelError(f"Distiller expected `{name}` to be a Keras 3 `keras.Model` instance. Received: "
                         f"{name}={model!r} of type {type(model).__name__}. tf_keras (Keras 2) models cannot be "
                         "distilled with this class: rebuild them with Keras 3.")
    if len(model.outputs or [None]) != 1:
        raise ModelError(f"Distiller expected `{name}` to have one output (class logits). Received: "
                         f"{name}={model.name!r} with {len(model.outputs)} outputs.")


def _frozen_copy(model):
    """A non-trainable copy of ``model`` with its weights."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.trainable = False
    return copy


@keras.saving.register_keras_serializable(package="keras_cprune")
class Distiller(keras.Model):
    """A `keras.Model` that trains ``student`` on ``alpha * student loss + (1 - alpha) * T² *
    KL(softmax(teacher / T) || softmax(student / T))`` (Hinton et al. 2015), T = ``temperature``.

    ``compile(optimizer, loss=..., metrics=...)`` takes the student's own loss (on the labels) and
    metrics, which see the student's predictions; ``fit``/``evaluate`` report the combined loss and
    ``predict`` returns the student's outputs. The teacher is frozen: a copy of it with
    ``trainable=False`` (the model passed in is left as it is) runs in inference mode. Both models must output
    logits, or probabilities with ``from_logits=False``. ``distiller.student`` is the trained model.

    Args:
        student: the Keras 3 `keras.Model` to train (e.g. a pruned model), one output of class
            logits.
        teacher: the Keras 3 `keras.Model` it learns from (e.g. the unpruned model), with as many
            classes as ``student``; a frozen copy is used.
        alpha: weight of the student loss on the labels, in [0, 1]; ``1 - alpha`` weighs the
            distillation loss. Default 0.1.
        temperature: softmax temperature T > 0 of both models' outputs in the distillation loss.
            Default 4.0.
        from_logits: True if both models output logits, False for probabilities. Default True.
        **kwargs: passed to `keras.Model` (e.g. ``name``).

    Raises:
        ModelError: a model is not a Keras 3 model, has several outputs, or the two differ in
            their number of classes.
        PruningError: ``alpha`` outside [0, 1] or ``temperature`` <= 0.

    Example:

    ```python
    distiller = keras_cprune.Distiller(student=pruned, teacher=model, alpha=0.1, temperature=4.0)
    distiller.compile("adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    distiller.fit(x, y, epochs=3)
    distiller.student.save("student.keras")
    ```
    """

    def __init__(self, student, teacher, alpha: float = 0.1, temperature: float = 4.0, *,
                 from_logits: bool = True, **kwargs):
        _check_model("student", student)
        _check_model("teacher", teacher)
        if not 0.0 <= float(alpha) <= 1.0:
            raise PruningError(f"Distiller expected `alpha` (the weight of the student loss) in [0, 1]. "
                               f"Received: alpha={alpha!r}.")
        if not float(temperature) > 0.0:
            raise PruningError(f"Distiller expected `temperature` > 0 (e.g. 4.0). "
                               f"Received: temperature={temperature!r}.")
        classes = (student.outputs[0].shape[-1], teacher.outputs[0].shape[-1])
        if classes[0] != classes[1]:
            raise ModelError(f"Distiller expected the student and the teacher to output the same number of "
                             f"classes. Received: student={student.name!r} with {classes[0]}, "
                             f"teacher={teacher.name!r} with {classes[1]}.")
        super().__init__(**kwargs)
        self.student = student
        self.teacher = _frozen_copy(teacher)  # the user's teacher is never modified
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.from_logits = bool(from_logits)

    def call(self, inputs, training=None):
        """The student's outputs on ``inputs``."""
        return self.student(inputs, training=training)

    def _logits(self, outputs):
        if self.from_logits:
            return outputs
        return ops.log(ops.clip(outputs, keras.backend.epsilon(), 1.0))  # softmax(log p) = p

    def distillation_loss(self, teacher_outputs, student_outputs, sample_weight=None):
        """T² · KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch.

        Args:
            teacher_outputs: the teacher's outputs, shape ``(batch, classes)``.
            student_outputs: the student's outputs, same shape.
            sample_weight: optional weight per sample, shape ``(batch,)``, as Keras'
                "sum_over_batch_size" reduction applies it. Default None: equal weights.

        Returns:
            A scalar tensor.
        """
        t = self.temperature
        teacher_log = ops.log_softmax(self._logits(teacher_outputs) / t, axis=-1)
        student_log = ops.log_softmax(self._logits(student_outputs) / t, axis=-1)
        kl = ops.sum(ops.exp(teacher_log) * (teacher_log - student_log), axis=-1)
        if sample_weight is not None:
            kl = kl * ops.reshape(ops.cast(sample_weight, kl.dtype), ops.shape(kl))
        return ops.mean(kl) * (t * t)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled student loss (plus the student's regularization losses) mixed with
        `distillation_loss` against the frozen teacher's outputs on the same ``x``."""
        student_loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                            training=training)
        if self.alpha == 1.0:
            return student_loss
        teacher_pred = ops.stop_gradient(self.teacher(x, training=False))
        soft = self.distillation_loss(teacher_pred, y_pred, sample_weight)
        return self.alpha * student_loss + (1.0 - self.alpha) * soft

    def get_config(self) -> dict:
        """The serialized student and teacher, ``alpha``, ``temperature`` and ``from_logits``."""
        return {**super().get_config(),
                "student": keras.saving.serialize_keras_object(self.student),
                "teacher": keras.saving.serialize_keras_object(self.teacher),
                "alpha": self.alpha, "temperature": self.temperature, "from_logits": self.from_logits}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None) -> "Distiller":
        """A `Distiller` from `get_config`'s dict (for ``keras.saving.load_model``)."""
        config = dict(config)
        student = keras.saving.deserialize_keras_object(config.pop("student"), custom_objects=custom_objects)
        teacher = keras.saving.deserialize_keras_object(config.pop("teacher"), custom_objects=custom_objects)
        return cls(student, teacher, **config)
