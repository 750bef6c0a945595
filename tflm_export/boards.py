"""Common microcontroller boards: on-chip SRAM and program flash, each from its datasheet, and the
TFLM build their firmware links (core and kernel set, a `Target`).

Adding a board is adding one `Board` entry. The tensor arena must be one contiguous block, so
where a chip's SRAM is split into banks at distant addresses, ``sram`` is the largest bank (the
RAM a budget checks the arena against) and the `note` says so.
"""
from __future__ import annotations

from dataclasses import dataclass

from tflm_export.errors import BudgetError

from tflm_export.budget import Budget
from tflm_export.micro.kernels import KERNEL_SETS
from tflm_export.micro.targets import CORES, Target, resolve_target

KB = 1024


@dataclass(frozen=True)
class Board:
    """A target microcontroller board and its memory, from its datasheet.

    Args:
        name: the key in `BOARDS`, e.g. ``"nano33ble"``.
        mcu: the chip and board, for people.
        sram: bytes of the largest contiguous SRAM block (what the tensor arena must fit in).
        flash: bytes of program flash.
        source: where the figures come from (datasheet and section).
        note: caveats, e.g. SRAM split into banks. Default "".
        core: its CPU core, e.g. ``"cortex-m4"`` (see `targets.CORES`). Default "" (unknown).
        kernels: the TFLM kernel set its firmware links by default: ``"cmsis_nn"``, ``"reference"``,
            or one not modelled (``"esp_nn"``). Default "".

    Example:

    ```python
    board = tflm_export.Board("my_m4", "STM32F411 (Cortex-M4)", 128 * 1024, 512 * 1024, "ST DS10314",
                              core="cortex-m4", kernels="cmsis_nn")
    report = tflm_export.verify(tflite, board=board)
    print(report.fits, report.target)   # judged on the arena predicted for cortex-m4/cmsis_nn
    ```
    """

    name: str
    mcu: str
    sram: int
    flash: int
    source: str
    note: str = ""
    core: str = ""
    kernels: str = ""

    def budget(self) -> Budget:
        """The `Budget` of this board: ``ram=sram``, ``flash=flash``."""
        return Budget(ram=self.sram, flash=self.flash)

    @property
    def target(self) -> Target | None:
        """The TFLM build of its firmware (``core``, ``kernels``), whose arena `predict_arena_from_tflite`
        predicts; None where that build is not modelled (an ESP-NN core, say): then the host figure serves."""
        if self.core in CORES and self.kernels in KERNEL_SETS:
            return Target(self.core, self.kernels)
        return None


BOARDS = {board.name: board for board in (
    Board("nano33ble", "Nordic nRF52840 (Cortex-M4F, 64 MHz) on the Arduino Nano 33 BLE", 256 * KB, 1024 * KB,
          "Nordic nRF52840 Product Specification v1.7, section 1 'Key features': 1 MB flash, 256 KB RAM",
          core="cortex-m4", kernels="cmsis_nn"),
    Board("stm32f746", "ST STM32F746NG (Cortex-M7, 216 MHz) on the 32F746G-DISCO", 320 * KB, 1024 * KB,
          "ST DS10916 (STM32F745xx/STM32F746xx datasheet), 'Features': 1 Mbyte flash, 320 Kbytes SRAM "
          "(incl. 64 Kbytes DTCM)", "DTCM, SRAM1 and SRAM2 are contiguous from 0x20000000",
          core="cortex-m7", kernels="cmsis_nn"),
    Board("stm32h743", "ST STM32H743ZI (Cortex-M7, 480 MHz) on the NUCLEO-H743ZI", 512 * KB, 2048 * KB,
          "ST DS12110 (STM32H742xI/G STM32H743xI/G datasheet), 'Features': 2 Mbytes flash, 1 Mbyte RAM "
          "(192 Kbytes TCM, 864 Kbytes user SRAM, 4 Kbytes backup SRAM)",
          "sram is the 512 KB AXI SRAM, the largest contiguous bank of the 1 MB: a bigger arena does not "
          "fit one block", core="cortex-m7", kernels="cmsis_nn"),
    Board("rp2040", "Raspberry Pi RP2040 (dual Cortex-M0+, 133 MHz) on the Raspberry Pi Pico", 264 * KB, 2048 * KB,
          "Raspberry Pi RP2040 Datasheet, section 1 'Introduction': 264 kB on-chip SRAM in six banks; "
          "Raspberry Pi Pico Datasheet, section 1: 2 MB on-board QSPI flash (external to the chip)",
          core="cortex-m0plus", kernels="cmsis_nn"),
    Board("esp32s3", "Espressif ESP32-S3 (dual Xtensa LX7, 240 MHz) on the ESP32-S3-WROOM-1-N8", 512 * KB, 8192 * KB,
          "Espressif ESP32-S3 Series Datasheet, 'Product Overview': 512 KB SRAM; ESP32-S3-WROOM-1 Datasheet, "
          "ordering table: N8 = 8 MB quad SPI flash (flash depends on the module)",
          "ESP-IDF reserves part of the SRAM for caches and its own code; its TFLM links ESP-NN kernels, "
          "which are not modelled: the host figure serves", core="xtensa-lx7", kernels="esp_nn"),
)}


def resolve_board(budget: Budget | None = None, board: str | Board | None = None, target=None) -> tuple:
    """``(Budget or None, board name or None, Target or None)`` of a fit check's arguments.

    ``board`` supplies the budget and the target its firmware links (`Board.target`) unless
    ``budget`` or ``target`` is given: those replace the board's.

    Args:
        budget: a `Budget`, or None.
        board: a board name of `BOARDS` (any case), a `Board`, or None.
        target: a `Target` or its name (``"cortex-m4/cmsis_nn"``, ``"host"``), or None.

    Returns:
        The budget, the board's name and the `Target` (None: no modelled build, the host figure serves).

    Raises:
        BudgetError: an unknown board or target name.
    """
    if board is not None and not isinstance(board, Board):
        found = BOARDS.get(str(board).lower())
        if found is None:
            raise BudgetError(f"Unknown board={board!r}. Known boards: {', '.join(BOARDS)}; or pass "
                              "budget=Budget(ram=..., flash=...).")
        board = found
    if budget is None and board is not None:
        budget = board.budget()
    if target is not None:
        target = resolve_target(target)
    elif board is not None:
        target = board.target
    return budget, board and board.name, target


def board_budget(name: str) -> Budget:
    """The `Budget` of a board of `BOARDS`: its largest contiguous SRAM block and its flash, in bytes.

    Args:
        name: a key of `BOARDS`, any case, e.g. ``"nano33ble"`` or ``"STM32F746"``.

    Returns:
        A `Budget` with ``ram`` and ``flash`` set (no MAC limit).

    Raises:
        BudgetError: an unknown board name (the message lists the known ones).

    Example:

    ```python
    budget = tflm_export.board_budget("nano33ble")   # 256 KB RAM, 1 MB flash
    pruned = keras_cprune.prune(model, "MA", budget=budget)
    ```
    """
    return resolve_board(board=name)[0]
