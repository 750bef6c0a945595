"""The TFLM builds an arena is predicted for: a `Target` is a core and a kernel set.

``"host"`` is the PyPI ``tflite-micro`` runtime (x86-64, reference kernels, the recording
allocator): what `find_min_arena` measures here. ``"cortex-m4/cmsis_nn"`` and the like are the
library a firmware links: TFLM built for that core, 32-bit structs, the plain allocator, and the
kernels' own scratch buffers (scripts/cortexm builds and measures them under qemu).
"""
from __future__ import annotations

from dataclasses import dataclass

from tflm_export.errors import BudgetError

from tflm_export.micro.kernels import KERNEL_SETS, kernel_table

__all__ = ["Layout", "Target", "TARGETS", "CORES", "resolve_target"]


@dataclass(frozen=True)
class Layout:
    """Sizes (bytes) of the allocator's own structs in one TFLM build.

    Attributes:
        runtime_objects: allocator, planner and builtin-data allocator objects, then the
            ``SubgraphAllocations``, allocated in the tail before the model is read.
        word: bytes of a pointer or ``size_t``; also the alignment of the structs below.
        eval_tensor: ``TfLiteEvalTensor``, one per tensor.
        node: ``NodeAndRegistration``, one per op.
        tflite_tensor: ``TfLiteTensor`` (with ``TF_LITE_STATIC_MEMORY``).
        affine_quant: ``TfLiteAffineQuantization``.
        scratch_request: ``internal::ScratchBufferRequest``.
        scratch_handle: ``ScratchBufferHandle``.
        allocation_info: ``AllocationInfo``, one per planned buffer while planning.
        live_after_late: byte spans of a temp ``TfLiteTensor``, its quantization struct and zero
            points (then of an output ``TfLiteTensor``) that FULLY_CONNECTED's Prepare reads
            after writing its per-channel arrays (see `kernels.Kernel.late`).
    """
    runtime_objects: int
    word: int
    eval_tensor: int
    node: int
    tflite_tensor: int
    affine_quant: int
    scratch_request: int
    scratch_handle: int
    allocation_info: int
    live_after_late: tuple


# x86-64 PyPI runtime: RecordingSingleArenaBufferAllocator + GreedyMemoryPlanner +
# RecordingMicroAllocator = 448, MicroBuiltinDataAllocator 16, SubgraphAllocations 24.
HOST_LAYOUT = Layout(488, 8, 24, 64, 64, 24, 16, 8, 32,
                     (((0, 4), (8, 16), (20, 24)), ((8, 16),), (), ((16, 20), (48, 52))))
# 32-bit build: SingleArenaBufferAllocator 36 + GreedyMemoryPlanner 44 + MicroAllocator 36,
# MicroBuiltinDataAllocator 8, SubgraphAllocations 8.
ARM32_LAYOUT = Layout(132, 4, 12, 32, 32, 12, 12, 4, 24,
                      (((0, 4), (4, 8), (12, 16)), ((4, 8),), (), ((8, 12), (28, 29))))

CORES = {"cortex-m0plus": "none", "cortex-m4": "dsp", "cortex-m7": "dsp", "cortex-m55": "mve"}


@dataclass(frozen=True)
class Target:
    """A TFLM build: the core it is compiled for and its kernel set.

    Attributes:
        core: ``"host"`` (the PyPI runtime) or a Cortex-M core of `CORES`.
        kernels: ``"reference"`` or ``"cmsis_nn"``.

    Example:

    ```python
    target = tflm_export.TARGETS["cortex-m4/cmsis_nn"]      # or Target("cortex-m4", "cmsis_nn")
    figure = tflm_export.predict_arena_from_tflite(tflite, target)
    print(target.describe(), figure.bytes)
    ```
    """
    core: str
    kernels: str = "reference"

    def __post_init__(self):
        if self.core != "host" and self.core not in CORES:
            raise BudgetError(f"Unknown core {self.core!r}. Expected 'host' or one of {', '.join(CORES)}.")
        if self.kernels not in KERNEL_SETS or (self.core == "host" and self.kernels != "reference"):
            raise BudgetError(f"Unknown kernels {self.kernels!r} for core {self.core!r}. Expected 'reference'"
                              f"{'' if self.core == 'host' else ' or cmsis_nn'}.")

    @property
    def name(self) -> str:
        """``"host"`` or ``"<core>/<kernels>"``."""
        return "host" if self.core == "host" else f"{self.core}/{self.kernels}"

    @property
    def layout(self) -> Layout:
        """The allocator's struct sizes in this build."""
        return HOST_LAYOUT if self.core == "host" else ARM32_LAYOUT

    @property
    def kernel_table(self) -> dict:
        """{op: `kernels.Kernel`} of this build."""
        if self.core == "host":
            return kernel_table("host", "reference")
        return kernel_table("arm32", self.kernels, CORES[self.core])

    def describe(self) -> str:
        """One line for people."""
        if self.core == "host":
            return "the PyPI tflite-micro runtime (x86-64, reference kernels)"
        return f"TFLM for {self.core} with {'CMSIS-NN' if self.kernels == 'cmsis_nn' else 'reference'} kernels"


HOST = Target("host")
TARGETS = {t.name: t for t in [HOST] + [Target(c, k) for c in CORES for k in KERNEL_SETS]}


def resolve_target(target) -> Target:
    """A `Target` from itself, its name (``"cortex-m4/cmsis_nn"``, ``"host"``) or None (host).

    Raises:
        BudgetError: an unknown name (the message lists the known ones).
    """
    if target is None:
        return HOST
    if isinstance(target, Target):
        return target
    found = TARGETS.get(str(target).lower())
    if found is None:
        raise BudgetError(f"Unknown target={target!r}. Known targets: {', '.join(TARGETS)}.")
    return found
