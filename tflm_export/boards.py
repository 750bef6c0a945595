"""Common microcontroller boards: on-chip SRAM and flash from their datasheets."""
from __future__ import annotations

from dataclasses import dataclass

from keras_cprune.errors import BudgetError

from .budget import Budget

KB = 1024


@dataclass(frozen=True)
class Board:
    name: str
    mcu: str
    sram: int  # bytes of on-chip SRAM
    flash: int  # bytes of program flash
    source: str  # where the figures come from

    def budget(self) -> Budget:
        return Budget(ram=self.sram, flash=self.flash)


BOARDS = {b.name: b for b in (
    Board("nano33ble", "nRF52840 (Cortex-M4F, 64 MHz)", 256 * KB, 1024 * KB,
          "Nordic nRF52840 Product Specification v1.7, section 1 'Key features': 1 MB flash, 256 KB RAM"),
    Board("stm32f746", "STM32F746NG (Cortex-M7, 216 MHz)", 320 * KB, 1024 * KB,
          "ST DS10916 (STM32F745xx/F746xx datasheet), section 1 'Description': up to 1 MB flash, 320 KB SRAM"),
    Board("stm32h743", "STM32H743ZI (Cortex-M7, 480 MHz)", 1024 * KB, 2048 * KB,
          "ST DS12110 (STM32H742/743/753 datasheet), section 1: up to 2 MB flash, 1 MB RAM (incl. TCM)"),
    Board("rp2040", "RP2040 (dual Cortex-M0+, 133 MHz) on Raspberry Pi Pico", 264 * KB, 2048 * KB,
          "Raspberry Pi RP2040 Datasheet, section 1 (264 KB SRAM); Pico Datasheet section 1 (2 MB QSPI flash)"),
    Board("esp32s3", "ESP32-S3 (dual Xtensa LX7, 240 MHz), ESP32-S3-WROOM-1-N8", 512 * KB, 8192 * KB,
          "Espressif ESP32-S3 Series Datasheet v1.8, section 1 (512 KB SRAM); WROOM-1 datasheet (N8: 8 MB flash)"),
)}


def board_budget(name: str) -> Budget:
    """The `Budget` of a board of `BOARDS` (SRAM, flash)."""
    try:
        return BOARDS[name.lower()].budget()
    except (KeyError, AttributeError):
        raise BudgetError(f"Unknown board {name!r}. Known boards: {', '.join(BOARDS)}; or pass "
                          "budget=Budget(ram=..., flash=...).") from None
