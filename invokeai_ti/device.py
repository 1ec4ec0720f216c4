"""What the training device can actually do, measured rather than assumed.

InvokeAI decided "xFormers available" by testing a function object (always true) and let users
pick fp16 on machines that cannot run it. Every device-dependent default (batch size, precision,
attention kernel) is derived here from a real probe, so the form and the CLI agree and never offer
something that fails at the first step.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from .quiet import quiet_imports


@dataclass(frozen=True)
class DeviceCaps:
    """The training device and the features proven to work on it."""

    kind: str
    name: str
    count: int
    fp16: bool
    bf16: bool
    xformers: bool
    xformers_reason: str
    device_names: tuple[str, ...] = ()

    @property
    def precisions(self) -> tuple[str, ...]:
        return ("no",) + (("fp16",) if self.fp16 else ()) + (("bf16",) if self.bf16 else ())

    @property
    def default_precision(self) -> str:
        """fp16 on GPUs, as InvokeAI users expect; full precision on a CPU.

        On a CPU without bf16 instructions, bf16 is emulated and far slower than fp32
        (docs/benchmarks.md); where the instructions exist it is offered but stays opt-in until
        measured there.
        """
        if self.kind == "cpu":
            return "no"
        return "fp16" if self.fp16 else "no"

    @property
    def default_batch_size(self) -> int:
        return 8 if self.xformers else 3

    def precision_problem(self, precision: str) -> str | None:
        """Why ``precision`` cannot run here, or None when it can."""
        if precision in self.precisions:
            return None
        if precision == "fp16":
            return (
                f"mixed precision fp16 needs a CUDA GPU and this machine trains on the "
                f"{self.kind.upper()}; choose bf16 or no"
            )
        if precision == "bf16" and self.kind == "cpu":
            return (
                "this CPU has no bf16 instructions, so mixed precision bf16 would run many times "
                "slower than full precision (see docs/benchmarks.md); choose no"
            )
        return f"mixed precision {precision} is not supported on the {self.name}; choose no"


def _cpu_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def probe_xformers(device: torch.device) -> tuple[bool, str]:
    """Run one tiny memory-efficient attention on ``device``: importing proves nothing."""
    try:
        with quiet_imports():
            import xformers.ops  # type: ignore[import-not-found]
    except Exception:
        return False, "xFormers is not installed"
    if device.type != "cuda":
        return False, f"xFormers kernels need a CUDA GPU; training runs on the {device.type}"
    try:
        with quiet_imports():
            q = torch.randn(1, 8, 1, 40, device=device, dtype=torch.float16)
            xformers.ops.memory_efficient_attention(q, q, q)
    except Exception as error:
        return False, f"xFormers is installed but does not run on this GPU ({type(error).__name__})"
    return True, "xFormers works on this GPU"


def training_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@functools.lru_cache(maxsize=1)
def detect() -> DeviceCaps:
    device = training_device()
    xformers, reason = probe_xformers(device)
    if device.type == "cuda":
        return DeviceCaps(
            kind="cuda",
            name=torch.cuda.get_device_name(0),
            count=torch.cuda.device_count(),
            fp16=True,
            bf16=torch.cuda.is_bf16_supported(),
            xformers=xformers,
            xformers_reason=reason,
            device_names=tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())),
        )
    if device.type == "mps":
        return DeviceCaps("mps", "Apple GPU", 1, True, False, xformers, reason)
    return DeviceCaps("cpu", "CPU", 1, False, _cpu_bf16(), xformers, reason)
