"""Pruning during `fit`: schedules, masks, callbacks; distillation and QAT."""
