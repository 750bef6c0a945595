"""tflm_export budgets and boards: size parsing, the board table, fits/headroom arithmetic."""
import dataclasses

import pytest

import tflm_export
from keras_cprune.errors import BudgetError
from tflm_export import BOARDS, Budget, Fit, board_budget, parse_size
from tflm_export.boards import resolve_board
from tflm_export.budget import parse_margin
from tflm_export.micro.targets import Target
from tflm_export.budget import describe_over
from tflm_export.micro.planner import align


@pytest.mark.parametrize("text,expected", [("256KB", 262144), ("1MB", 1048576), ("512 KiB", 524288), (65536, 65536),
                                           ("1.5MB", 1572864), ("7 kb", 7168), ("300B", 300), (" 2 MiB ", 2097152),
                                           (0.6, 1), ("1.4", 1)])
def test_sizes_use_1024_byte_kilobytes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["12 parsecs", "-4KB", "", "1e3KB", "inf", 0, -5, float("nan"), True, [64]])
def test_bad_sizes_name_the_argument_and_the_accepted_forms(bad):
    with pytest.raises(BudgetError, match=r"ram=") as error:
        Budget(ram=bad)
    assert "'64KB'" in str(error.value) or "positive" in str(error.value)


@pytest.mark.parametrize("tiny", [0.4, "0.4", "0.5 B", 0.49])
def test_sizes_that_round_to_zero_bytes_are_refused(tiny):
    with pytest.raises(BudgetError, match=r"ram= must be a positive size, at least 1 byte") as error:
        Budget(ram=tiny)
    assert f"Received: ram={tiny!r}" in str(error.value)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "1M", True])
def test_macs_must_be_a_positive_integer(bad):
    with pytest.raises(BudgetError, match="macs="):
        Budget(macs=bad)


def test_budget_config_round_trip_and_repr():
    budget = Budget(ram="256KB", flash=1000, macs=5_000_000)
    assert budget.get_config() == {"ram": 262144, "flash": 1000, "macs": 5_000_000}
    assert Budget.from_config(budget.get_config()) == budget
    assert repr(budget) == "Budget(ram='256KB', flash=1000, macs=5000000)" and eval(repr(budget)) == budget


def test_check_reports_headroom_per_limited_resource():
    fits = Budget(ram="64KB", macs=1000).check(ram=70_000, flash=123, macs=1000)
    assert set(fits) == {"ram", "macs"}  # flash has no limit
    assert fits["ram"] == Fit(70_000, 65_536) and not fits["ram"].fits and fits["ram"].headroom == -4_464
    assert fits["macs"].fits and fits["macs"].headroom == 0
    assert fits["ram"].to_dict() == {"used": 70_000, "limit": 65_536, "fits": False, "headroom": -4_464}


def test_over_budget_text_has_bytes_for_memory_and_no_unit_for_macs():
    fits = Budget(ram="64KB", flash=1000, macs=1000).check(ram=70_000, flash=999, macs=1_200)
    assert describe_over(fits) == "ram 70,000 B > 65,536 B, macs 1,200 > 1,000"
    assert fits["flash"].describe("flash") == "flash 999 B <= 1,000 B" and describe_over({}) == ""
    assert Budget(ram="64KB", macs=10).describe() == "ram <= 65,536 B, macs <= 10"


def test_replace_tightens_a_budget_and_checks_the_new_limit():
    budget = Budget(ram="64KB", flash="1MB")
    assert dataclasses.replace(budget, ram=1000) == Budget(ram=1000, flash="1MB")
    with pytest.raises(BudgetError, match="Received: ram=-1"):
        dataclasses.replace(budget, ram=-1)


def test_arena_sizes_align_to_tflms_16_byte_steps():
    assert [align(n) for n in (0, 1, 16, 17, 65_535)] == [0, 16, 16, 32, 65_536] and align(9, 8) == 16


def test_boards_table():
    assert board_budget("nano33ble") == Budget(ram="256KB", flash="1MB")
    assert board_budget("STM32F746") == Budget(ram="320KB", flash="1MB")
    assert board_budget("stm32h743") == Budget(ram="512KB", flash="2MB")  # the AXI SRAM: one block of the 1 MB
    assert "512 KB AXI SRAM" in BOARDS["stm32h743"].note
    assert board_budget("rp2040") == Budget(ram="264KB", flash="2MB")
    assert board_budget("esp32s3").ram == 512 * 1024
    assert all("atasheet" in b.source or "Specification" in b.source for b in BOARDS.values())
    assert resolve_board(board=BOARDS["rp2040"]) == (Budget(ram="264KB", flash="2MB"), "rp2040",
                                                     Target("cortex-m0plus", "cmsis_nn"))


def test_each_board_names_the_tflm_build_its_firmware_links():
    assert {name: b.target and b.target.name for name, b in BOARDS.items()} == {
        "nano33ble": "cortex-m4/cmsis_nn", "stm32f746": "cortex-m7/cmsis_nn", "stm32h743": "cortex-m7/cmsis_nn",
        "rp2040": "cortex-m0plus/cmsis_nn", "esp32s3": None}  # ESP-NN kernels: not modelled
    assert "ESP-NN" in BOARDS["esp32s3"].note


def test_budget_and_target_replace_the_boards_own():
    assert resolve_board() == (None, None, None)
    assert resolve_board(Budget(ram=1000), "NANO33BLE") == (Budget(ram=1000), "nano33ble", Target("cortex-m4", "cmsis_nn"))
    assert resolve_board(board="nano33ble", target="cortex-m4/reference")[2] == Target("cortex-m4")
    assert resolve_board(board="esp32s3")[2] is None
    assert resolve_board(Budget(ram=1), target="host") == (Budget(ram=1), None, Target("host"))


def test_unknown_board_target_and_bad_margin_are_errors():
    with pytest.raises(BudgetError, match="Known boards: nano33ble, stm32f746"):
        board_budget("arduino-uno-q")
    with pytest.raises(BudgetError, match="Unknown target='cortex-m3/cmsis_nn'. Known targets: host"):
        resolve_board(Budget(ram=1), target="cortex-m3/cmsis_nn")
    assert parse_margin(0) == 0 and parse_margin("1KB") == 1024 and parse_margin(100) == 100
    for bad in (-1, None, "lots", True):
        with pytest.raises(BudgetError, match="margin="):
            parse_margin(bad)
    assert tflm_export.Budget is Budget
