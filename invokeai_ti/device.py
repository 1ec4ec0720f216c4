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

from .errors import Problem
from .models import BASE_SDXL
from .quiet import quiet_imports

BATCH_8_MEMORY = 12 * 10**9
# SDXL at 1024 px: the diffusers SDXL example measured 11.9 GiB at batch 1 and 27.2 GiB at batch 4
# on an H100 in bf16 (issue 12), about 7 GiB of model and 5 GiB per image. invokeai-ti keeps less
# than the example, so these are upper bounds: the batch that fits in 85 % of the card by them.
SDXL_FIXED_BYTES = 7 * 2**30
SDXL_BYTES_PER_IMAGE = 5 * 2**30


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
    memory_bytes: int = 0
    sdpa_efficient: bool = False
    sdpa_reason: str = "PyTorch's memory-efficient attention needs a CUDA GPU"

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
    def efficient_attention(self) -> bool:
        """xFormers or PyTorch's own flash / memory-efficient attention runs on this device."""
        return self.xformers or self.sdpa_efficient

    @property
    def default_batch_size(self) -> int:
        """8 where memory-efficient attention works on a GPU of at least 12 GB, else 3.

        InvokeAI claimed 12 GB for batch 8 with xFormers; its users found 16 GB not always enough
        without it, so the attention kernel and the memory both have to be there.
        """
        big_enough = self.memory_bytes >= BATCH_8_MEMORY
        return 8 if self.kind == "cuda" and self.efficient_attention and big_enough else 3

    def batch_size_for(self, base: str | None) -> int:
        """The default batch size for a model of this base on this device.

        SDXL's UNet is three times SD-1's and trains at 1024 px, so its default comes from the
        GPU's memory (1 on a CPU or a 12-16 GB card, 2 on 24 GB, up to 8 on 80 GB).
        """
        if base != BASE_SDXL:
            return self.default_batch_size
        if self.kind != "cuda":
            return 1
        fits = (int(self.memory_bytes * 0.85) - SDXL_FIXED_BYTES) // SDXL_BYTES_PER_IMAGE
        return int(min(8, max(1, fits)))

    def batch_reason(self, base: str | None = None) -> str:
        """Why the batch size defaults the way it does here, for the form."""
        if base == BASE_SDXL:
            batch = self.batch_size_for(base)
            where = f"this GPU's {self.memory_bytes / 2**30:.0f} GiB" if self.kind == "cuda" else f"the {self.name}"
            return f"batch size defaults to {batch} for SDXL on {where}"
        if self.kind != "cuda":
            return f"batch size defaults to 3: training runs on the {self.name}"
        gib = self.memory_bytes / 2**30
        if not self.efficient_attention:
            return (
                f"batch size defaults to 3: no memory-efficient attention works on this GPU "
                f"({self.sdpa_reason}; {self.xformers_reason})"
            )
        kernel = "xFormers" if self.xformers else "PyTorch's memory-efficient attention"
        if self.memory_bytes < BATCH_8_MEMORY:
            return f"batch size defaults to 3: {kernel} works but this GPU has {gib:.0f} GB, under 12 GB"
        return f"batch size defaults to 8: {kernel} works and this GPU has {gib:.0f} GB"

    def precision_problem(self, precision: str) -> Problem | None:
        """Why ``precision`` cannot run here, or None when it can."""
        if precision in self.precisions:
            return None
        if precision == "fp16":
            text = (
                f"mixed precision fp16 needs a CUDA GPU and this machine trains on the "
                f"{self.kind.upper()}; choose bf16 or no"
            )
        elif precision == "bf16" and self.kind == "cpu":
            text = (
                "this CPU has no bf16 instructions, so mixed precision bf16 would run many times "
                "slower than full precision (see docs/benchmarks.md); choose no"
            )
        else:
            text = f"mixed precision {precision} is not supported on the {self.name}; choose no"
        return Problem(text, "mixed_precision")


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


def probe_sdpa(device: torch.device) -> tuple[bool, str]:
    """Run PyTorch's flash or memory-efficient attention kernel once on ``device``.

    ``scaled_dot_product_attention`` silently falls back to the plain kernel, which holds the
    whole attention matrix; only forcing the efficient backends proves they run here.
    """
    if device.type != "cuda":
        return False, f"PyTorch's memory-efficient attention needs a CUDA GPU; training runs on the {device.type}"
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        q = torch.randn(1, 8, 64, 40, device=device, dtype=torch.float16)
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
    except Exception as error:
        return False, f"PyTorch's memory-efficient attention does not run on this GPU ({type(error).__name__})"
    return True, "PyTorch's memory-efficient attention works on this GPU"


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
        sdpa, sdpa_reason = probe_sdpa(device)
        return DeviceCaps(
            kind="cuda",
            name=torch.cuda.get_device_name(0),
            count=torch.cuda.device_count(),
            fp16=True,
            bf16=torch.cuda.is_bf16_supported(),
            xformers=xformers,
            xformers_reason=reason,
            device_names=tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())),
            memory_bytes=torch.cuda.get_device_properties(0).total_memory,
            sdpa_efficient=sdpa,
            sdpa_reason=sdpa_reason,
        )
    if device.type == "mps":
        return DeviceCaps("mps", "Apple GPU", 1, True, False, xformers, reason)
    return DeviceCaps("cpu", "CPU", 1, False, _cpu_bf16(), xformers, reason)
