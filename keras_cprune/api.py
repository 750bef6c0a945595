"""prune / prune_to_budget / apply_plan: complexity-driven filter pruning of a Keras model into a smaller one."""
from __future__ import annotations

from keras_cprune.budget.fit import fit_budget, resolve_verifier
from keras_cprune.config import PruneConfig, check_per_channel_dense, resolve_config
from keras_cprune.graph.dependency import build_dependencies
from keras_cprune.errors import PruningError
from keras_cprune.graph.reader import read_graph
from keras_cprune.pruning.plan import PruningPlan, removed_units_of
from keras_cprune.pruning.context import PruneContext
from keras_cprune.pruning.rebuild import rebuild

BUDGET_ARGUMENTS = ("allocation", "verify", "representative_data", "step", "verbose", "progress")


def prune(model, mode: str = "PA", ratio: float | None = None, *, config: PruneConfig | None = None,
          reinitialize: bool = False, input_shape=None, return_plan: bool = False, budget=None,
          per_channel_dense: bool = True, **options):
    """Removes ``ratio`` of the filters of the channel groups ``mode`` selects: a new, smaller dense model.

    ``mode`` picks the groups holding a large share of the model's parameters ("PA"), FLOPs ("FA")
    or activation memory ("MA"), by ``config.rule``; each loses ``ratio`` of its filters, lowest
    ``config.importance`` first, keeping at least ``config.min_keep`` of every layer (see
    `PruneConfig`). The model passed in is never modified. With ``budget=`` this is
    `prune_to_budget(model, budget, mode=mode, ...)`, which searches the ratio itself.

    Args:
        model: a built Functional or Sequential Keras model (Keras 3 or tf_keras).
        mode: "PA", "FA" or "MA" (case-insensitive).
        ratio: fraction of each selected group's filters removed, in [0, 1). Defaults to 0.5;
            giving it together with ``budget`` is an error.
        config: the `PruneConfig` (defaults: `PruneConfig()`).
        reinitialize: fresh weights instead of the kept ones (the paper trains from scratch).
        input_shape: a shape such as ``(96, 96, 3)`` for models with free input dimensions.
        return_plan: also return the `PruningPlan`.
        budget: a `Budget`: delegate to `prune_to_budget` (kept for existing calls).
        per_channel_dense: the int8 export the plan's predicted arena (and a budget) is for, as
            `tflm_export.convert`'s: False when Dense weights will be quantized per tensor.
        **options: fields of `PruneConfig` (``importance="l2"``, ``round_to=4``...), overriding
            those of ``config``; with ``budget``, also `prune_to_budget`'s arguments.

    Returns:
        The pruned Keras model of the same class, layer names and input/output shapes, or
        ``(model, plan)`` with ``return_plan=True``.

    Raises:
        PruningError: a bad mode, ratio or option; ``ratio`` and ``budget`` both given; a budget
            search argument (``verify``, ``step``...) without ``budget``; or a model with nothing to prune.
        TypeError: an unknown option.

    Example:
    ```python
    pruned, plan = keras_cprune.prune(model, "MA", 0.5, round_to=4, return_plan=True)
    plan.summary()
    ```
    """
    if budget is not None:
        if ratio is not None:
            raise PruningError(f"Pass `ratio` or `budget`, not both: with a budget the search chooses how much to "
                               f"prune. Received: ratio={ratio!r}, budget={budget!r}. Use prune(model, mode, ratio) "
                               f"or prune_to_budget(model, budget, mode=mode).")
        return prune_to_budget(model, budget, mode=mode, config=config, reinitialize=reinitialize,
                               input_shape=input_shape, return_plan=return_plan,
                               per_channel_dense=per_channel_dense, **options)
    misplaced = {k: options.pop(k) for k in BUDGET_ARGUMENTS if k in options}
    config = resolve_config(config, **options)
    if misplaced:
        raise PruningError(f"{sorted(misplaced)} only apply when pruning to a budget. Received: "
                           f"{', '.join(f'{k}={v!r}' for k, v in misplaced.items())} without `budget`. "
                           f"Use prune_to_budget(model, budget, ...), or drop them to prune by ratio.")
    context = PruneContext.of(model, input_shape=input_shape, per_channel_dense=check_per_channel_dense(per_channel_dense))
    ratio = 0.5 if ratio is None else ratio
    if not return_plan:  # the plan's predicted arena would convert the model: nobody reads it
        return _rebuilt(context, None, context.choose(mode, ratio, config)[0], reinitialize, False)
    plan, removed = context.plan(mode, ratio, config)
    return _rebuilt(context, plan, removed, reinitialize, return_plan)


def prune_to_budget(model, budget, *, mode: str = "MA", config: PruneConfig | None = None, allocation: str = "cost",
                    verify="auto", representative_data=None, step: float = 0.1, verbose="auto", progress=None,
                    per_channel_dense: bool = True, reinitialize: bool = False, input_shape=None,
                    return_plan: bool = False, **options):
    """The least pruning that fits ``budget`` (TFLM arena, flash, MACs), measured on TFLM when installed.

    Pruning goes in steps from the unpruned model: with ``allocation="cost"`` each step cuts ``step``
    of the channels of the group saving most of the binding resource per unit of importance removed;
    with "paper", of the groups ``mode`` selects by ``config.rule``. Usage is predicted in the
    converter's op order; ``verify`` then converts the result to int8 and measures it on the TFLM
    runtime, searching on while the measurement is over. The model passed in is never modified.

    Args:
        model: a built Functional or Sequential Keras model (Keras 3 or tf_keras).
        budget: a `Budget` (``ram``/``flash`` bytes, ``macs``).
        mode: "PA", "FA" or "MA": the groups the "paper" allocation selects.
        config: the `PruneConfig` (defaults: `PruneConfig()`).
        allocation: "cost" or "paper" (see above).
        verify: "auto" (measure when ``tflite-micro`` is installed), True, False (trust the
            prediction) or "every_step" (measure every step instead of predicting).
        representative_data: calibration inputs for the measurement (default: 32 uniform [0, 1)
            samples; sizes do not depend on the values).
        step: fraction of a group's channels cut per step, in (0, 1).
        verbose: 0 silent, 1 a progress bar, 2 one line per search, "auto" as ``Model.fit``.
        progress: a callable given one line of text per search step, or None.
        per_channel_dense: the export the budget is for, as `tflm_export.convert`'s: False when
            Dense weights will be quantized per tensor (a smaller arena for Dense stacks). Default True.
        reinitialize: fresh weights instead of the kept ones.
        input_shape: a shape such as ``(96, 96, 3)`` for models with free input dimensions.
        return_plan: also return the `PruningPlan` (``plan.after`` holds the predicted and
            measured arena and flash).
        **options: fields of `PruneConfig`, overriding those of ``config``.

    Returns:
        The pruned Keras model, or ``(model, plan)`` with ``return_plan=True``.

    Raises:
        BudgetError: the budget cannot be met with every layer kept at ``config.min_keep``; the
            message gives the smallest reachable usage.
        PruningError: a bad mode or option.

    Example:
    ```python
    pruned = keras_cprune.prune_to_budget(model, keras_cprune.Budget(ram="64KB"), mode="MA")
    ```
    """
    config = resolve_config(config, **options)
    context = PruneContext.of(model, input_shape=input_shape, per_channel_dense=check_per_channel_dense(per_channel_dense))
    verifier, every_step = resolve_verifier(context, verify, representative_data)
    plan, removed = fit_budget(context, mode, budget, verify=verifier, progress=progress, verbose=verbose,
                               step=step, allocation=allocation, estimate=verifier if every_step else None,
                               **config.options())
    return _rebuilt(context, plan, removed, reinitialize, return_plan)


def _rebuilt(context: PruneContext, plan: PruningPlan | None, removed: set, reinitialize: bool, return_plan: bool):
    pruned = rebuild(context.model, context.deps, removed, weights="none" if reinitialize else "slice")
    return (pruned, plan) if return_plan else pruned


def apply_plan(model, plan: PruningPlan, *, reinitialize: bool = False):
    """Rebuilds ``model`` as a saved `PruningPlan` says: the same pruning on the same architecture.

    Args:
        model: the architecture the plan was made for (layer names and widths must match).
        plan: a `PruningPlan`, e.g. ``PruningPlan.from_json(text)``.
        reinitialize: fresh weights instead of the kept ones.

    Returns:
        The pruned Keras model.

    Raises:
        PlanError: the plan does not match ``model`` (a layer missing or of another width).

    Example:
    ```python
    _, plan = keras_cprune.prune(model, "FA", 0.5, return_plan=True)
    again = keras_cprune.apply_plan(keras.models.clone_model(model), plan)
    ```
    """
    graph = read_graph(model)
    deps = build_dependencies(graph)
    return rebuild(model, deps, removed_units_of(plan, deps), weights="none" if reinitialize else "slice")
