"""`Usage`: the deployment resources of one pruning state, predicted from the Keras graph.

The budget search (`budget_search`) compares a `Usage` with a `tflm_export.Budget`; the TFLM
measurement of the same state (`budget.tflm_verifier`) returns a `Usage` too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tflm_export.budget import Budget
from tflm_export.micro.planner import align

from keras_cprune.deploy.arena import estimate_deployment
from keras_cprune.pruning.context import PruneContext


@dataclass(frozen=True)
class Usage:
    """Deployment resources of one pruning state.

    Attributes:
        ram: tensor arena bytes.
        flash: model data bytes.
        macs: multiply-accumulates per inference.
        peak_tensors: graph tensor keys alive where the predicted arena peak happens (predictions only).
        peak_op: the op at the arena peak (predictions only).
    """

    ram: int
    flash: int
    macs: int
    peak_tensors: tuple = ()
    peak_op: str = ""

    def over(self, budget: Budget) -> dict:
        """The resources over ``budget``'s limits; the arena counts in TFLM's 16-byte steps.

        Args:
            budget: the limits.

        Returns:
            ``{"ram"|"flash"|"macs": Fit}`` of each resource over its limit; empty when all fit.
        """
        fits = budget.check(ram=align(self.ram), flash=self.flash, macs=self.macs)
        return {name: fit for name, fit in fits.items() if not fit.fits}


def usage_estimator(context: PruneContext) -> Callable[[set], Usage]:
    """A predictor of a pruning state's `Usage`, from the Keras graph alone.

    The arena is TFLM's, exact; flash is estimated; both of the pruned model as it will be
    deployed, trained (see `estimate_arena`'s ``assume_trained``).

    Args:
        context: the model being pruned.

    Returns:
        ``estimate(removed) -> Usage`` for a set of removed units.
    """
    def estimate(removed: set) -> Usage:
        arena, flash = estimate_deployment(context.graph, context.deps.pruned_shapes(removed), assume_trained=True,
                                           per_channel_dense=context.per_channel_dense, schedule=context.schedule)
        return Usage(arena.bytes, flash, context.price(removed).macs, arena.peak_tensors, arena.peak_layer)

    return estimate
