"""Where a model runs, in which precision, and how much memory its device holds.

Every question is asked of the model's own device (``cuda:1``), never of the thread's current CUDA
device: a worker's inference thread starts on ``cuda:0`` whatever device its models live on, so
``torch.cuda.memory_allocated()`` without an argument reads the wrong card for a model on ``cuda:1``.
"""

from __future__ import annotations

import torch

from generators.config import ModelConfig

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: Compute capability from which NVIDIA cards have bfloat16 tensor cores (Ampere: A100, RTX 30xx).
NATIVE_BF16_CAPABILITY = (8, 0)

#: A device as models and configs name it: ``torch.device("cuda:1")`` or the string ``"cuda:1"``.
DeviceLike = torch.device | str


def pick_device(setting: str = "auto") -> torch.device:
    """The configured device, or the best one present: CUDA, then Apple's MPS, then the CPU."""
    if setting != "auto":
        return torch.device(setting)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(setting: str, device: torch.device) -> torch.dtype:
    """The configured dtype, or half precision on GPUs and float32 on CPUs.

    CPUs get float32 only: bfloat16 matmuls on CPUs without AMX run hundreds of times slower. CUDA
    cards get bfloat16 only where it runs on tensor cores; a T4 or V100 emulates it, far slower than
    float16.
    """
    if setting != "auto":
        return _DTYPES[setting]
    if device.type == "cuda":
        return torch.bfloat16 if native_bf16(device) else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def native_bf16(device: DeviceLike) -> bool:
    """Whether ``device`` computes bfloat16 on tensor cores (ROCm GPUs, NVIDIA from compute 8.0).

    Not ``torch.cuda.is_bf16_supported()``: it asks the current device, not ``device``, and by
    default it counts bfloat16 that merely runs, emulated, as supported.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return False
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device) >= NATIVE_BF16_CAPABILITY


def placement(config: ModelConfig) -> tuple[torch.device, torch.dtype]:
    """Device and dtype for ``config``."""
    device = pick_device(config.device)
    return device, pick_dtype(config.dtype, device)


def on_cuda(device: DeviceLike) -> bool:
    """Whether ``device`` is a CUDA device (and CUDA is there to ask)."""
    return torch.device(device).type == "cuda" and torch.cuda.is_available()


def allocated(device: DeviceLike) -> int:
    """Bytes of tensors torch holds on ``device`` now; 0 off CUDA, where nothing counts them."""
    return torch.cuda.memory_allocated(torch.device(device)) if on_cuda(device) else 0


def reserved(device: DeviceLike) -> int:
    """Bytes torch's allocator holds on ``device`` (tensors and its cache); 0 off CUDA."""
    return torch.cuda.memory_reserved(torch.device(device)) if on_cuda(device) else 0


def total_memory(device: DeviceLike) -> int | None:
    """Bytes of memory ``device`` has in all; None off CUDA."""
    if not on_cuda(device):
        return None
    return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)


def free_memory(device: DeviceLike) -> int | None:
    """Bytes ``device`` could still hand out (every process counted); None off CUDA."""
    if not on_cuda(device):
        return None
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def empty_cache(device: DeviceLike) -> None:
    """Hand ``device``'s cached, unused blocks back to the driver; nothing off CUDA."""
    if on_cuda(device):
        # The allocator releases on the current device: make it the model's for the call.
        with torch.cuda.device(torch.device(device)):
            torch.cuda.empty_cache()


def synchronize(device: DeviceLike) -> None:
    """Wait for the work queued on ``device``, so a timing covers it; nothing off CUDA."""
    if on_cuda(device):
        torch.cuda.synchronize(torch.device(device))
