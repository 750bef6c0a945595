"""Pruning schedules: how much of the model ``fit``-time pruning removes at each step.

Small serializable objects (`get_config`/`from_config`), registered by class name so a checkpoint
can name them.
"""
from __future__ import annotations

import abc
import dataclasses

from keras_cprune.errors import PruningError

_SCHEDULES: dict[str, type] = {}


class PruningSchedule(abc.ABC):
    """When to re-plan (``prunes_at(step)``) and the fraction of each selected group's filters
    to remove then (``ratio_at(step)``). Subclasses are frozen dataclasses, registered by name
    (so `serialize_schedule` and checkpoints can name them).

    Args:
        *args, **kwargs: a subclass's own fields.

    Example:

    ```python
    @dataclasses.dataclass(frozen=True)
    class Steps(keras_cprune.PruningSchedule):  # 0.2 after step 100, 0.5 after step 500
        def prunes_at(self, step):
            return step in (100, 500)

        def ratio_at(self, step):
            return 0.5 if step >= 500 else 0.2 if step >= 100 else 0.0

    masked, step = keras_cprune.prune_during_training(model, "FA", schedule=Steps())
    ```
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _SCHEDULES[cls.__name__] = cls

    @abc.abstractmethod
    def prunes_at(self, step: int) -> bool:
        """Whether to re-plan which filters are removed before ``step`` runs."""

    @abc.abstractmethod
    def ratio_at(self, step: int) -> float:
        """Fraction of each selected group's filters removed when re-planning at ``step``."""

    def get_config(self) -> dict:
        """The constructor arguments, a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> "PruningSchedule":
        """The schedule `get_config` described."""
        return cls(**config)


def _check_ratio(name: str, value) -> None:
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise PruningError(f"`{name}` is a fraction of filters to remove and must be in [0, 1). "
                           f"Received: {name}={value!r}.")


def _check_steps(begin_step, frequency) -> None:
    if not isinstance(begin_step, int) or begin_step < 0:
        raise PruningError(f"`begin_step` must be an integer >= 0. Received: begin_step={begin_step!r}.")
    if not isinstance(frequency, int) or frequency < 1:
        raise PruningError(f"`frequency` (steps between re-planning) must be an integer >= 1. "
                           f"Received: frequency={frequency!r}.")


@dataclasses.dataclass(frozen=True)
class PolynomialDecay(PruningSchedule):
    """Ratio rising from ``initial_ratio`` to ``final_ratio`` between ``begin_step`` and ``end_step``.

    The ratio at a step is ``final + (initial - final) * (1 - progress) ** power`` (progress from
    0 at ``begin_step`` to 1 at ``end_step``), re-planned every ``frequency`` steps from
    ``begin_step`` and at ``end_step`` (so the final ratio is always reached).

    Args:
        initial_ratio: fraction of each selected group's filters removed at ``begin_step``, in [0, 1).
        final_ratio: the fraction removed from ``end_step`` on, in [0, 1).
        begin_step: first step (or epoch, with ``unit="epoch"``) that prunes, >= 0.
        end_step: step at which ``final_ratio`` is reached, > ``begin_step``.
        power: exponent of the decay, > 0; 3 (default) prunes fast early and gently late.
        frequency: steps between re-planning, >= 1. Default 100.

    Raises:
        PruningError: an argument outside its range.

    Example:

    ```python
    schedule = keras_cprune.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=1000)
    schedule.ratio_at(500)   # 0.4375
    masked, step = keras_cprune.prune_during_training(model, "FA", schedule=schedule)
    ```
    """

    initial_ratio: float
    final_ratio: float
    begin_step: int
    end_step: int
    power: float = 3.0
    frequency: int = 100

    def __post_init__(self):
        _check_ratio("initial_ratio", self.initial_ratio)
        _check_ratio("final_ratio", self.final_ratio)
        _check_steps(self.begin_step, self.frequency)
        if not isinstance(self.end_step, int) or self.end_step <= self.begin_step:
            raise PruningError(f"`end_step` must be an integer > begin_step={self.begin_step}. "
                               f"Received: end_step={self.end_step!r}.")
        if not isinstance(self.power, (int, float)) or self.power <= 0:
            raise PruningError(f"`power` must be > 0. Received: power={self.power!r}.")

    def prunes_at(self, step: int) -> bool:
        return self.begin_step <= step <= self.end_step and (
            (step - self.begin_step) % self.frequency == 0 or step == self.end_step)

    def ratio_at(self, step: int) -> float:
        progress = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        return self.final_ratio + (self.initial_ratio - self.final_ratio) * (1.0 - progress) ** self.power


@dataclasses.dataclass(frozen=True)
class ConstantRatio(PruningSchedule):
    """The same ``ratio`` from ``begin_step`` on, re-planned every ``frequency`` steps.

    Args:
        ratio: fraction of each selected group's filters removed, in [0, 1).
        begin_step: first step (or epoch, with ``unit="epoch"``) that prunes, >= 0. Default 0.
        frequency: steps between re-planning, >= 1. Default 100.

    Raises:
        PruningError: an argument outside its range.

    Example:

    ```python
    schedule = keras_cprune.ConstantRatio(0.5, begin_step=200, frequency=100)
    masked, step = keras_cprune.prune_during_training(model, "PA", schedule=schedule)
    masked.fit(x, y, epochs=3, callbacks=[step])
    ```
    """

    ratio: float
    begin_step: int = 0
    frequency: int = 100

    def __post_init__(self):
        _check_ratio("ratio", self.ratio)
        _check_steps(self.begin_step, self.frequency)

    def prunes_at(self, step: int) -> bool:
        return step >= self.begin_step and (step - self.begin_step) % self.frequency == 0

    def ratio_at(self, step: int) -> float:
        return float(self.ratio)


def serialize_schedule(schedule: PruningSchedule) -> dict:
    """``{"class_name", "config"}`` of ``schedule``, for a checkpoint."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize_schedule(data: dict) -> PruningSchedule:
    """The schedule `serialize_schedule` wrote; `PruningError` for an unknown class name."""
    name = data.get("class_name")
    if name not in _SCHEDULES:
        raise PruningError(f"Unknown pruning schedule {name!r}. Expected one of {sorted(_SCHEDULES)} "
                           "(define a PruningSchedule subclass before loading it).")
    return _SCHEDULES[name].from_config(data["config"])
