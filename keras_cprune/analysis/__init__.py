"""`analyze` -> `ComplexityReport`: parameters, MACs and activation memory per layer."""
