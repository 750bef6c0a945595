"""`BoardFitTuner`: a KerasTuner search over pruned variants that fit a board."""
