"""Budget: the RAM, flash and MAC limits of a target, and how a measured model compares (`Fit`).

Sizes are bytes: ``65536``, ``"64KB"``, ``"512 KiB"``, ``"1.5MB"``; KB = KiB = 1024 bytes and
MB = MiB = 1024 KiB, the convention of microcontroller datasheets.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from tflm_export.errors import BudgetError

_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024 ** 2, "MB": 1024 ** 2, "MIB": 1024 ** 2}
_FORMS = "bytes (65536) or a string such as '64KB', '512 KiB' or '1.5MB' (KB = KiB = 1024 bytes)"


def parse_size(value, name: str = "size", minimum: int = 1) -> int | None:
    """Bytes from an int or a size string such as ``"64KB"``; None stays None.

    Args:
        value: bytes (``65536``), a size string (``"64KB"``, ``"512 KiB"``, ``"1.5MB"``; KB = KiB =
            1024 bytes) or None.
        name: the argument's name, for the error message.
        minimum: the smallest size accepted, in bytes. Default 1.

    Returns:
        The size in whole bytes (at least ``minimum``), or None.

    Raises:
        BudgetError: ``value`` is not a size, or under ``minimum`` once rounded to whole bytes.

    Example:

    ```python
    parse_size("1.5KB")  # 1536
    ```
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BudgetError(f"{name}= must be {_FORMS}. Received: {name}={value!r}.")
    size = value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", value)
        if not match or match.group(2).upper() not in _UNITS:
            raise BudgetError(f"{name}={value!r} is not a size. Use {_FORMS}.")
        size = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if size != size or abs(size) == math.inf or round(size) < minimum:  # rounded first: 0.4 bytes is 0 bytes
        least = "a positive size, at least 1 byte" if minimum == 1 else f"a size of at least {minimum} bytes"
        raise BudgetError(f"{name}= must be {least} once rounded to whole bytes. Received: {name}={value!r}.")
    return int(round(size))


def parse_margin(margin) -> int:
    """The ``margin=`` of a fit check in bytes: 0, or a size as `parse_size` reads it.

    A fit is judged on the arena + ``margin`` (rounded up to 16 bytes), the ``kTensorArenaSize``
    the firmware then reserves.

    Raises:
        BudgetError: ``margin`` is neither 0 nor a size (the message names it).
    """
    if margin is None:
        raise BudgetError(f"margin= is bytes reserved above the arena: 0 or {_FORMS}. Received: margin=None.")
    return parse_size(margin, "margin", minimum=0)


def format_size(size: int) -> str:
    """``"256KB"``, ``"1MB"`` or ``"1,234 B"``: the shortest exact form, for people."""
    for unit, factor in (("MB", 1024 ** 2), ("KB", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size:,} B"


UNITS = {"ram": " B", "flash": " B", "macs": ""}  # written after a number: bytes, or a count of MACs


@dataclass(frozen=True)
class Fit:
    """One resource against its limit, as `Budget.check` returns it.

    Attributes:
        used: what the model uses: bytes for "ram" (tensor arena) and "flash", MACs for "macs".
        limit: the budget's limit, in the same unit.

    Example:

    ```python
    fit = Budget(ram="64KB").check(ram=70_000, flash=0, macs=0)["ram"]
    fit.fits, fit.headroom, fit.describe("ram")  # False, -4464, 'ram 70,000 B > 65,536 B'
    ```
    """

    used: int
    limit: int

    @property
    def fits(self) -> bool:
        """True when ``used <= limit``."""
        return self.used <= self.limit

    @property
    def headroom(self) -> int:
        """``limit - used``: negative when over budget."""
        return self.limit - self.used

    def to_dict(self) -> dict:
        return {"used": self.used, "limit": self.limit, "fits": self.fits, "headroom": self.headroom}

    def describe(self, resource: str) -> str:
        """``"ram 70,000 B > 65,536 B"`` (``<=`` when it fits), in the unit of ``resource``.

        Args:
            resource: "ram", "flash" or "macs".

        Returns:
            The resource, ``used`` and ``limit`` as one line of text.
        """
        unit = UNITS[resource]
        return f"{resource} {self.used:,}{unit} {'<=' if self.fits else '>'} {self.limit:,}{unit}"


def describe_over(fits: dict) -> str:
    """The resources of ``fits`` over their limit, as ``"ram 70,000 B > 65,536 B, macs 1,200 > 1,000"``.

    Args:
        fits: ``{"ram"|"flash"|"macs": Fit}``, as `Budget.check` or `TFLMReport.resources` return it.

    Returns:
        The over-budget resources, comma-separated; "" when everything fits.
    """
    return ", ".join(fit.describe(name) for name, fit in fits.items() if not fit.fits)


@dataclass(frozen=True)
class Budget:
    """The limits of a target; None sets no limit. Frozen: tighten one with `dataclasses.replace`.

    Args:
        ram: bytes for the tensor arena: an int or a size string such as ``"64KB"`` (see `parse_size`).
        flash: bytes for the model data, in the same forms.
        macs: multiply-accumulates per inference, a positive int.

    Raises:
        BudgetError: a limit is not a positive size (``macs``: not a positive int).

    Example:

    ```python
    budget = Budget(ram="64KB", flash="256KB")
    budget.check(ram=70_000, flash=100_000, macs=10**6)["ram"].fits  # False
    dataclasses.replace(budget, ram=60_000)  # Budget(ram=60000, flash='256KB')
    ```
    """

    ram: int | None = None
    flash: int | None = None
    macs: int | None = None

    def __init__(self, ram=None, flash=None, macs=None):
        object.__setattr__(self, "ram", parse_size(ram, "ram"))
        object.__setattr__(self, "flash", parse_size(flash, "flash"))
        if macs is not None and (isinstance(macs, bool) or not isinstance(macs, int) or macs <= 0):
            raise BudgetError(f"macs= must be a positive integer (multiply-accumulates per inference). "
                              f"Received: macs={macs!r}.")
        object.__setattr__(self, "macs", macs)

    def check(self, *, ram: int, flash: int, macs: int) -> dict:
        """How a model's resources compare with this budget's limits.

        Args:
            ram: tensor arena bytes.
            flash: model data bytes.
            macs: multiply-accumulates per inference.

        Returns:
            ``{"ram"|"flash"|"macs": Fit}`` for each resource this budget limits.
        """
        used = {"ram": ram, "flash": flash, "macs": macs}
        return {name: Fit(int(used[name]), limit) for name, limit in self.get_config().items() if limit is not None}

    def describe(self) -> str:
        """The limits as text, ``"ram <= 65,536 B, macs <= 1,000,000"``: each set one with its unit."""
        return ", ".join(f"{name} <= {limit:,}{UNITS[name]}" for name, limit in self.get_config().items()
                         if limit is not None)

    def get_config(self) -> dict:
        return {"ram": self.ram, "flash": self.flash, "macs": self.macs}

    @classmethod
    def from_config(cls, config: dict) -> "Budget":
        return cls(**config)

    def __repr__(self) -> str:
        def size(n):  # a string where it is a whole number of KB, so that the repr reads like the call
            return repr(format_size(n)) if n % 1024 == 0 else n

        limits = {"ram": self.ram and size(self.ram), "flash": self.flash and size(self.flash), "macs": self.macs}
        parts = [f"{name}={value}" for name, value in limits.items() if value is not None]
        return f"Budget({', '.join(parts)})"
