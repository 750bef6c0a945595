"""Quantization-aware training (QAT) of a pruned model with tensorflow-model-optimization.

tfmot 0.8 wraps tf_keras (Keras 2) layers only, so QAT needs the model built with ``tf_keras``.
"""
from __future__ import annotations

from keras_cprune.errors import ModelError
from keras_cprune.graph.reader import check_model


def quantize_aware(model):
    """A copy of a tf_keras ``model`` with fake-quantized weights and activations, for QAT.

    ``tfmot.quantization.keras.quantize_model(model)``: fine-tune the result before int8
    conversion so the weights adapt to int8 rounding. ``model`` is not modified.

    Args:
        model: a tf_keras (Keras 2) `Model`, e.g. a pruned one (``TF_USE_LEGACY_KERAS=1``).

    Returns:
        The quantization-aware tf_keras model (compile it before ``fit``).

    Raises:
        ModelError: ``model`` is a Keras 3 model, which tfmot cannot wrap, or has layers tfmot
            cannot quantize.

    Example:

    ```python
    import tf_keras
    from keras_cprune.zoo import vgg

    qat = keras_cprune.quantize_aware(keras_cprune.prune(vgg(keras=tf_keras), "FA", 0.5))
    qat.compile("adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    qat.fit(x, y, epochs=1)
    ```
    """
    keras = check_model(model)
    if keras.__name__ != "tf_keras":
        raise ModelError(
            f"quantize_aware needs a tf_keras (Keras 2) model: tensorflow-model-optimization only wraps tf_keras "
            f"layers. Received: model={model.name!r}, a Keras {keras.__version__} model. To proceed, set "
            "TF_USE_LEGACY_KERAS=1, build the model with `import tf_keras as keras` (zoo models: "
            "keras_cprune.zoo.vgg(keras=tf_keras)), prune it with keras_cprune (`apply_plan(model, plan)` repeats a "
            "saved plan) and call quantize_aware on it; or skip QAT and quantize after training "
            "(tf.lite.TFLiteConverter with a representative dataset)."
        )
    import tensorflow_model_optimization as tfmot

    try:
        return tfmot.quantization.keras.quantize_model(model)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"tensorflow-model-optimization cannot quantize model {model.name!r}: {exc} Custom or "
                         "unsupported layers need a QuantizeConfig (tfmot.quantization.keras.quantize_annotate_layer) "
                         "and quantize_scope.") from exc
