"""keras-cprune: complexity-driven structured pruning of Keras CNNs for TFLite Micro."""
