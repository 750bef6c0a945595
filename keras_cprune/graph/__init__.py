"""Keras 3 / tf_keras model -> neutral graph; the per-layer-type table (formulas, channel role,
weight slicing, `register_layer`); coupled channel groups."""
