"""Importance, the paper's PA/FA/MA selection, `PruningPlan`, rebuilding a smaller keras.Model."""
