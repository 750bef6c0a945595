"""The pruning entry points. Each returns one type: a model (`prune`, `prune_to_budget`, `apply_plan`)
or a `PruningPlan` (`plan_pruning`, `plan_to_budget`); ``apply_plan(model, plan)`` rebuilds what a plan says.
"""
from __future__ import annotations

from tflm_export.boards import resolve_board

from keras_cprune.budget.fit import fit_budget, resolve_verifier
from keras_cprune.config import PruneConfig, SearchConfig, check_per_channel_dense, resolve_config
from keras_cprune.errors import BudgetError, PruningError
from keras_cprune.graph.dependency import build_dependencies
from keras_cprune.graph.reader import read_graph, with_input_shape
from keras_cprune.pruning.context import PruneContext
from keras_cprune.pruning.plan import PruningPlan, removed_units_of
from keras_cprune.pruning.rebuild import rebuild


def prune(model, mode: str = "PA", ratio: float = 0.5, *, config: PruneConfig | None = None,
          reinitialize: bool = False, input_shape=None, **options):
    """Removes ``ratio`` of the filters of the channel groups ``mode`` selects: a new, smaller dense model.

    ``mode`` picks the groups holding a large share of the model's parameters ("PA"), FLOPs ("FA")
    or activation memory ("MA"), by ``config.rule``; each loses ``ratio`` of its filters, lowest
    ``config.importance`` first, keeping at least ``config.min_keep`` of every layer (see
    `PruneConfig`). The model passed in is never modified. `plan_pruning` gives the plan of the
    same call (what is removed, what it saves); `prune_to_budget` prunes to fit a `Budget`.

    Args:
        model: a built Functional or Sequential Keras model (Keras 3 or tf_keras).
        mode: "PA", "FA" or "MA" (case-insensitive).
        ratio: fraction of each selected group's filters removed, in [0, 1). Default 0.5.
        config: the `PruneConfig` (defaults: `PruneConfig()`).
        reinitialize: fresh weights instead of the kept ones (the paper trains from scratch).
        input_shape: a shape such as ``(96, 96, 3)`` for models with free input dimensions.
        **options: fields of `PruneConfig` (``importance="l2"``, ``round_to=4``...), overriding
            those of ``config``.

    Returns:
        The pruned Keras model of the same class, layer names and input/output shapes.

    Raises:
        PruningError: a bad mode, ratio or option, or a model with nothing to prune.

    Example:
    ```python
    pruned = keras_cprune.prune(model, "MA", 0.5, round_to=4)
    ```
    """
    config = resolve_config(config, **options)
    context = PruneContext.of(model, input_shape=input_shape)
    removed, _ = context.choose(mode, ratio, config)  # the plan's arena would convert the model: not needed
    return rebuild(context.model, context.deps, removed, weights="none" if reinitialize else "slice")


def plan_pruning(model, mode: str = "PA", ratio: float = 0.5, *, config: PruneConfig | None = None,
                 input_shape=None, per_channel_dense: bool = True, target=None, **options) -> PruningPlan:
    """The `PruningPlan` of ``prune(model, mode, ratio, ...)``: the channels each layer keeps and
    the model's totals before and after, with the predicted TFLM arena and flash.

    Predicting the arena converts the unpruned model once (cached per architecture).

    Args:
        model, mode, ratio, config, input_shape, **options: as `prune`'s.
        per_channel_dense: the int8 export the arena and flash are predicted for, as
            `tflm_export.convert`'s: False when Dense weights will be quantized per tensor.
        target: the TFLM build the arena is predicted for (``"cortex-m4/cmsis_nn"``, see
            ``tflm_export.micro.targets.TARGETS``); None: the PyPI runtime.

    Returns:
        A `PruningPlan`; ``apply_plan(model, plan)`` builds the model `prune` would.

    Raises:
        PruningError: as `prune`'s; ``per_channel_dense`` not a bool.
        BudgetError: an unknown ``target``.

    Example:
    ```python
    plan = keras_cprune.plan_pruning(model, "MA", 0.5)
    plan.summary()
    pruned = keras_cprune.apply_plan(model, plan)
    ```
    """
    config = resolve_config(config, **options)
    context = PruneContext.of(model, input_shape=input_shape, per_channel_dense=check_per_channel_dense(per_channel_dense),
                              target=target)
    return context.plan(mode, ratio, config)[0]


def prune_to_budget(model, budget=None, *, board=None, target=None, margin=0, mode: str = "MA",
                    config: PruneConfig | None = None, search: SearchConfig | None = None, representative_data=None,
                    verbose="auto", progress=None, per_channel_dense: bool = True, reinitialize: bool = False,
                    input_shape=None, **options):
    """The least pruning that fits ``budget`` (TFLM arena + ``margin``, flash, MACs), then checked on the int8 model.

    Pruning goes in steps from the unpruned model: with ``search.allocation="cost"`` each step cuts
    ``search.step`` of the channels of the group saving most of the binding resource per unit of
    importance removed; with "paper", of the groups ``mode`` selects by ``config.rule``. Usage is
    predicted in the converter's op order; ``search.verify`` then converts the result to int8 and
    checks it, searching on while it is over: the arena of the ``target`` build (a board's)
    predicted from the flatbuffer, the figure `tflm_export.export` judges with the same arguments,
    or without a target the arena measured on the TFLM runtime. The model passed in is never modified. `plan_to_budget` gives the plan (with the measured arena and flash).

    Args:
        model: a built Functional or Sequential Keras model (Keras 3 or tf_keras).
        budget: a `Budget` (``ram``/``flash`` bytes, ``macs``); default: the ``board``'s.
        board: a name of ``tflm_export.BOARDS`` or a ``tflm_export.Board``: its budget (unless
            ``budget``) and its TFLM build (unless ``target``).
        target: the TFLM build the arena is for: a ``tflm_export.micro.targets.Target`` or its name
            (``"cortex-m4/cmsis_nn"``); None: the board's, else the PyPI runtime's.
        margin: bytes (or ``"1KB"``) reserved above the arena: ram is judged on arena + margin,
            as ``tflm_export.export(..., margin=...)`` judges and reserves it. Default 0.
        mode: "PA", "FA" or "MA": the groups the "paper" allocation selects.
        config: the `PruneConfig` (defaults: `PruneConfig()`).
        search: the `SearchConfig`: allocation, step, verify (defaults: `SearchConfig()`).
        representative_data: calibration inputs for the measurement (default: 32 uniform [0, 1)
            samples; sizes do not depend on the values).
        verbose: 0 silent, 1 a progress bar, 2 one line per search, "auto" as ``Model.fit``.
        progress: a callable given one line of text per search step, or None.
        per_channel_dense: the export the budget is for, as `tflm_export.convert`'s: False when
            Dense weights will be quantized per tensor (a smaller arena for Dense stacks). Default True.
        reinitialize: fresh weights instead of the kept ones.
        input_shape: a shape such as ``(96, 96, 3)`` for models with free input dimensions.
        **options: fields of `PruneConfig`, overriding those of ``config``.

    Returns:
        The pruned Keras model.

    Raises:
        BudgetError: the budget cannot be met with every layer kept at ``config.min_keep`` (the
            message gives the smallest reachable usage); no budget nor board; an unknown board or
            target; a bad margin.
        PruningError: a bad mode or option.

    Example:
    ```python
    pruned = keras_cprune.prune_to_budget(model, keras_cprune.Budget(ram="64KB"), board="nano33ble", mode="MA")
    tflm_export.export(pruned, x[:200], "fw", budget=keras_cprune.Budget(ram="64KB"), board="nano33ble")  # fits
    ```
    """
    plan = plan_to_budget(model, budget, board=board, target=target, margin=margin, mode=mode, config=config,
                          search=search,
                          representative_data=representative_data, verbose=verbose, progress=progress,
                          per_channel_dense=per_channel_dense, input_shape=input_shape, **options)
    return apply_plan(model, plan, reinitialize=reinitialize, input_shape=input_shape)


def plan_to_budget(model, budget=None, *, board=None, target=None, margin=0, mode: str = "MA",
                   config: PruneConfig | None = None,
                   search: SearchConfig | None = None, representative_data=None, verbose="auto", progress=None,
                   per_channel_dense: bool = True, input_shape=None, **options) -> PruningPlan:
    """The `PruningPlan` of ``prune_to_budget(model, budget, ...)``: the least pruning that fits.

    Args:
        model, budget, board, target, margin, mode, config, search, representative_data, verbose, progress, per_channel_dense, input_shape, **options:
            as `prune_to_budget`'s.

    Returns:
        A `PruningPlan`; ``plan.after`` holds the predicted and, when measured, the measured arena
        and flash; ``apply_plan(model, plan)`` builds the model `prune_to_budget` would.

    Raises:
        BudgetError: as `prune_to_budget`'s.

    Example:
    ```python
    plan = keras_cprune.plan_to_budget(model, keras_cprune.Budget(ram="64KB"), mode="MA")
    print(plan.after.measured_arena)
    pruned = keras_cprune.apply_plan(model, plan, reinitialize=True)
    ```
    """
    config = resolve_config(config, **options)
    settings = _search_config(search)
    budget, _, target = resolve_board(budget, board, target)
    if budget is None:
        raise BudgetError("Expected budget=Budget(ram=..., flash=..., macs=...) or board= (e.g. 'nano33ble'). "
                          "Received neither.")
    context = PruneContext.of(model, input_shape=input_shape, per_channel_dense=check_per_channel_dense(per_channel_dense),
                              target=target, margin=margin)
    verifier, every_step = resolve_verifier(context, settings.verify, representative_data)
    return fit_budget(context, mode, budget, config=config, settings=settings, verify=verifier, progress=progress,
                      verbose=verbose, estimate=verifier if every_step else None)[0]


def _search_config(search) -> SearchConfig:
    if search is None:
        return SearchConfig()
    if not isinstance(search, SearchConfig):
        raise PruningError(f"Expected `search` to be a keras_cprune.SearchConfig or None, e.g. "
                           f"search=SearchConfig(allocation='paper'). Received: search={search!r} "
                           f"of type {type(search).__name__}.")
    return search


def apply_plan(model, plan: PruningPlan, *, reinitialize: bool = False, input_shape=None):
    """Rebuilds ``model`` as a `PruningPlan` says: the same pruning on the same architecture.

    Args:
        model: the architecture the plan was made for (layer names and widths must match).
        plan: a `PruningPlan`, from `plan_pruning` or `plan_to_budget`, or ``PruningPlan.from_json(text)``.
        reinitialize: fresh weights instead of the kept ones.
        input_shape: the shape the plan was made at, for models with free input dimensions.

    Returns:
        The pruned Keras model.

    Raises:
        PlanError: the plan does not match ``model`` (a layer missing or of another width).

    Example:
    ```python
    plan = keras_cprune.plan_pruning(model, "FA", 0.5)
    again = keras_cprune.apply_plan(keras.models.clone_model(model), plan)
    ```
    """
    model = with_input_shape(model, input_shape)
    deps = build_dependencies(read_graph(model))
    return rebuild(model, deps, removed_units_of(plan, deps), weights="none" if reinitialize else "slice")
