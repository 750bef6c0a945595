"""Custom layers in an importable module, for the conversion of non-TensorFlow-backend models
(tests/test_backends.py): the TensorFlow process that converts them imports them from here."""
import keras


@keras.saving.register_keras_serializable(package="keras_cprune_tests")
class Scale(keras.layers.Layer):
    """Multiplies each channel by a learned factor (registered: found by name when loading)."""

    def build(self, input_shape):
        self.factor = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="factor")

    def call(self, x):
        return x * self.factor


class Shift(keras.layers.Layer):
    """Adds a constant (not registered: loading needs ``custom_objects={"Shift": Shift}``)."""

    def __init__(self, offset: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def call(self, x):
        return x + self.offset

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}


def scaled_model(shift=None):
    """Dense -> Scale (-> ``shift``) -> Dense, input (4,)."""
    inputs = keras.Input((4,))
    x = Scale(name="scale")(keras.layers.Dense(3, name="d1")(inputs))
    if shift is not None:
        x = shift(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="d2")(x), name="scaled")
