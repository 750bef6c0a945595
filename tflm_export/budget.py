"""Budget: RAM (tensor arena), flash and MAC limits, written as ``"256KB"``, ``"1MB"`` or bytes."""
from __future__ import annotations

import re
from dataclasses import dataclass

from keras_cprune.errors import BudgetError

_UNITS = {"": 1, "B": 1, "KB": 1024, "KIB": 1024, "K": 1024, "MB": 1024 ** 2, "MIB": 1024 ** 2, "M": 1024 ** 2}


def parse_size(value, name: str = "size") -> int | None:
    """Bytes from ``65536``, ``"64KB"``, ``"64 KiB"``, ``"1.5MB"`` (KB = KiB = 1024 bytes)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BudgetError(f"{name}= must be a size. Received: {name}={value!r}.")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
        if not match or match.group(2).upper() not in _UNITS:
            raise BudgetError(f"{name}={value!r} is not a size. Use bytes (65536) or a string such as '64KB', "
                              "'512 KiB' or '1MB' (KB = KiB = 1024 bytes).")
        number, unit = float(match.group(1)), match.group(2).upper()
    size = int(round(number * _UNITS[unit]))
    if size <= 0:
        raise BudgetError(f"{name}= must be positive. Received: {name}={value!r}.")
    return size


@dataclass(frozen=True)
class Budget:
    """Resource limits of a target: ``ram`` and ``flash`` in bytes, ``macs`` per inference."""

    ram: int | None = None
    flash: int | None = None
    macs: int | None = None

    def __init__(self, ram=None, flash=None, macs=None):
        object.__setattr__(self, "ram", parse_size(ram, "ram"))
        object.__setattr__(self, "flash", parse_size(flash, "flash"))
        if macs is not None and (not isinstance(macs, int) or isinstance(macs, bool) or macs <= 0):
            raise BudgetError(f"macs= must be a positive integer (multiply-accumulates per inference). "
                              f"Received: macs={macs!r}.")
        object.__setattr__(self, "macs", macs)

    def __repr__(self) -> str:
        parts = [f"{n}={getattr(self, n):,}" for n in ("ram", "flash", "macs") if getattr(self, n) is not None]
        return f"Budget({', '.join(parts)})"
