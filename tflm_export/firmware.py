"""Compile check of the generated model data with Debian's arm-none-eabi toolchain."""
from __future__ import annotations

import os
import shutil
import subprocess

FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-Os", "-std=c++17", "-c"]


def compile_check(out_dir: str, name: str = "model") -> dict:
    """Compile ``{name}_data.cc`` for Cortex-M4 and read its flash (text + data) with
    ``arm-none-eabi-size``. ``{"compiled": False, "reason": ...}`` when the compiler is absent."""
    compiler, size = shutil.which("arm-none-eabi-g++"), shutil.which("arm-none-eabi-size")
    if not compiler or not size:
        return {"compiled": False, "reason": "arm-none-eabi-g++ not on PATH (apt-get install gcc-arm-none-eabi)"}
    source = os.path.join(out_dir, f"{name}_data.cc")
    obj = os.path.join(out_dir, f"{name}_data.o")
    command = [compiler, *FLAGS, source, "-o", obj]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return {"compiled": False, "reason": result.stderr.strip()[-2000:], "command": " ".join(command)}
    text, data, *_ = subprocess.run([size, obj], capture_output=True, text=True, check=True).stdout.splitlines()[1].split()
    os.unlink(obj)
    return {"compiled": True, "flash_bytes": int(text) + int(data), "command": " ".join(command),
            "compiler": subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.splitlines()[0]}
