"""Compile check of the generated sources with Debian's arm-none-eabi toolchain (Cortex-M4)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass

FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-Os", "-std=c++17", "-Wall", "-Werror")


@dataclass(frozen=True)
class CompileResult:
    """``flash_bytes``: text + data of ``{name}_data.o`` (the model array and its length);
    ``ram_bytes``: data + bss of it (0: the model stays in flash). ``reason`` when not compiled."""

    compiled: bool
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    command: str = ""
    compiler: str = ""
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def compile_check(out_dir: str, name: str = "model") -> CompileResult:
    """Compile ``{name}_data.cc`` (``-mcpu=cortex-m4 -mthumb -Os -c``, warnings as errors) and
    syntax-check ``{name}_settings.h``, then read the object's sizes with ``arm-none-eabi-size``.
    Without the toolchain: ``CompileResult(compiled=False, reason=...)``. ``out_dir`` is not written."""
    compiler, size = shutil.which("arm-none-eabi-g++"), shutil.which("arm-none-eabi-size")
    if not compiler or not size:
        return CompileResult(False, reason="arm-none-eabi-g++ is not on PATH (Debian: apt-get install "
                                           "gcc-arm-none-eabi libstdc++-arm-none-eabi-newlib)")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    with tempfile.TemporaryDirectory(prefix="tflm-cc-") as tmp:
        obj = os.path.join(tmp, f"{name}_data.o")
        command = [compiler, *FLAGS, "-c", os.path.join(out_dir, f"{name}_data.cc"), "-o", obj]
        settings = os.path.join(tmp, "settings.cc")
        with open(settings, "w") as f:
            f.write(f'#include "{name}_settings.h"\n#include "{name}_data.h"\n')
        for step in (command, [compiler, *FLAGS, "-fsyntax-only", "-I", out_dir, settings]):
            result = subprocess.run(step, capture_output=True, text=True)
            if result.returncode != 0:
                return CompileResult(False, command=" ".join(step), compiler=version,
                                     reason=result.stderr.strip()[-2000:])
        text, data, bss = subprocess.run([size, obj], capture_output=True, text=True,
                                         check=True).stdout.splitlines()[1].split()[:3]
    return CompileResult(True, int(text) + int(data), int(data) + int(bss), " ".join(command), version)
