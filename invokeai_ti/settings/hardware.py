"""The machine a run trains on: precision, TF32, xFormers, compiling, determinism and the image
decoding threads. Several processes (``accelerate launch``) each read the same settings, which
``settings_to_argv`` carries to them.

Its ``None`` defaults mean "decide for this device"; ``TrainingSettings.resolve_device_defaults``
fills them from a probe of the device (``DeviceDefaults``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..errors import Problem
from .fields import choice_problem, setting

PRECISIONS = ("no", "fp16", "bf16")
# torch.compile with CUDA graphs took about 130 s on first use and saved about 70 ms a step at
# batch 4 on an H100 (issue 13's measurements), so it pays back after roughly 2000 steps.
COMPILE_MIN_STEPS = 2000


class DeviceDefaults(Protocol):
    """What the machine-dependent defaults are read from; ``device.DeviceCaps`` is one.

    A protocol rather than an import, so that this module (and ``invokeai-ti --help``) loads
    without torch.
    """

    @property
    def kind(self) -> str: ...

    @property
    def xformers(self) -> bool: ...

    @property
    def default_precision(self) -> str: ...

    def batch_size_for(self, base: str | None) -> int: ...


@dataclass
class HardwareSettings:
    """How the device runs the steps (the end of ``--help``'s training group)."""

    mixed_precision: str | None = setting(
        None, "mixed precision (default: fp16 on a GPU, no on a CPU)", group="training",
        choices=PRECISIONS, label="Mixed Precision",
    )
    allow_tf32: bool = setting(False, "allow TF32 matrix maths on Ampere GPUs", group="training")
    enable_xformers_memory_efficient_attention: bool | None = setting(
        None, "use xFormers attention (default: on when it works on this GPU)", group="training",
        label="Use xformers acceleration",
    )
    compile: bool | None = setting(
        None,
        "compile the UNet (CUDA graphs on a GPU): slower start, faster steps (default: on for "
        f"CUDA runs of at least {COMPILE_MIN_STEPS} steps, where it pays back)",
        group="training",
    )
    deterministic: bool = setting(
        False,
        "make runs bit-identical for the same seed and after a resume, at some speed (on a CUDA "
        "GPU: deterministic kernels; on a CPU: one thread, whatever the load; OMP_NUM_THREADS also "
        "fixes the CPU's thread count)",
        group="training", label="Bit-identical results (slower)",
    )
    dataloader_num_workers: int = setting(
        0, "threads that decode and resize images while the VAE encodes them", group="training"
    )

    def precision_problem(self) -> Problem | None:
        return choice_problem(self.mixed_precision, "mixed precision", PRECISIONS, "mixed_precision")
