"""`Usage`: the deployment resources of one pruning state, predicted from the Keras graph.

The budget search (`budget_search`) compares a `Usage` with a `tflm_export.Budget`; the TFLM
measurement of the same state (`budget.fit.tflm_verifier`) returns a `Usage` too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tflm_export.arena import ArenaFigure
from tflm_export.budget import Budget
from tflm_export.micro.planner import align

from keras_cprune.deploy.arena import estimate_deployment
from keras_cprune.pruning.context import PruneContext


@dataclass(frozen=True)
class Usage:
    """Deployment resources of one pruning state, predicted or measured.

    Attributes:
        arena: the TFLM tensor arena (`ArenaFigure`: its bytes are the RAM a `Budget` limits; a
            prediction also says which layer and tensors are at its peak).
        flash: model data bytes, plus on a Cortex-M target the TFLM code its op resolver links (where measured).
        macs: multiply-accumulates per inference.
        margin: bytes the firmware reserves above the arena (``tflm_export.export``'s ``margin``).
    """

    arena: ArenaFigure
    flash: int
    macs: int
    margin: int = 0

    def amount(self, resource: str) -> int:
        """The usage of a `Budget` resource: ``"ram"`` (the arena's bytes + margin), ``"flash"`` or ``"macs"``."""
        return {"ram": self.arena.bytes + self.margin, "flash": self.flash, "macs": self.macs}[resource]

    def over(self, budget: Budget) -> dict:
        """The resources over ``budget``'s limits; ram is arena + margin in TFLM's 16-byte steps, the
        ``kTensorArenaSize`` the export writes.

        Args:
            budget: the limits.

        Returns:
            ``{"ram"|"flash"|"macs": Fit}`` of each resource over its limit; empty when all fit.
        """
        fits = budget.check(ram=align(self.amount("ram")), flash=self.flash, macs=self.macs)
        return {name: fit for name, fit in fits.items() if not fit.fits}


def usage_estimator(context: PruneContext) -> Callable[[set], Usage]:
    """A predictor of a pruning state's `Usage`, from the Keras graph alone.

    The arena is that of the context's TFLM build (its ``target``), exact; flash is estimated;
    both of the pruned model as it will be deployed, trained (see `estimate_arena`'s ``assume_trained``).

    Args:
        context: the model being pruned.

    Returns:
        ``estimate(removed) -> Usage`` for a set of removed units.
    """
    def estimate(removed: set) -> Usage:
        arena, flash = estimate_deployment(context.graph, context.deps.pruned_shapes(removed), assume_trained=True,
                                           per_channel_dense=context.per_channel_dense, schedule=context.schedule,
                                           target=context.target)
        return Usage(arena, flash, context.price(removed).macs, context.margin)

    return estimate
