"""Where a model runs and in which precision."""

from __future__ import annotations

import torch

from generators.config import ModelConfig

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


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

    CPUs get float32 only: bfloat16 matmuls on CPUs without AMX run hundreds of times slower.
    """
    if setting != "auto":
        return _DTYPES[setting]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def placement(config: ModelConfig) -> tuple[torch.device, torch.dtype]:
    """Device and dtype for ``config``."""
    device = pick_device(config.device)
    return device, pick_dtype(config.dtype, device)
