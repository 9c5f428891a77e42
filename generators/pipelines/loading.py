"""Turn ``model:`` settings into a loaded backend, or a message that says what to do."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import torch

from generators.config import ModelConfig
from generators.errors import ModelLoadError
from generators.pipelines.backend import DiffusersBackend
from generators.pipelines.device import placement
from generators.pipelines.tiny import tiny_autoencoder, write_tiny_image, write_tiny_video
from generators.presets import (
    FEW_STEP_IMAGE,
    FEW_STEP_SCHEDULERS,
    GENERIC_IMAGE,
    GENERIC_VIDEO,
    PRESETS,
    Preset,
    model_info,
)
from generators.requests import Kind

log = logging.getLogger(__name__)

_BUILTIN = {"builtin:tiny": write_tiny_image, "builtin:tiny-video": write_tiny_video}


def load_backend(config: ModelConfig, name: str | None = None) -> DiffusersBackend:
    """Load the configured model onto its device; raise ModelLoadError with advice when it can't be.

    ``name`` is what users call the model (an entry of ``models:``); it defaults to ``config.name``.
    """
    name = name or config.name
    preset = PRESETS.get(config.name)
    source = str(config.path) if config.path else (preset.source if preset else config.name)
    device, dtype = placement(config)
    if config.tiny_vae == "tiny" and source not in _BUILTIN:
        raise ModelLoadError(_TINY_VAE.format(name=name))
    log.info("loading model %s from %s on %s (%s)", name, source, device, dtype)
    if source in _BUILTIN:
        pipe = _load_builtin(source, config.seed, dtype)
    else:
        pipe = _load_pretrained(source, name, config, dtype)
    pipe = pipe.to(device)
    apply_switches(pipe, config)
    kind = _kind_of(pipe, config)
    preset = preset or _generic(pipe, kind)
    info = model_info(name, config, preset, kind, device=str(device), dtype=str(dtype).removeprefix("torch."))
    tiny_vae = _load_tiny_vae(config, device, dtype) if config.tiny_vae else None
    return DiffusersBackend(pipe, info, tiny_vae=tiny_vae, fast_decode=config.fast_decode)


def _generic(pipe: Any, kind: Kind) -> Preset:
    """Defaults for a model that is not a preset: from its kind, and its scheduler's step range."""
    if kind is Kind.VIDEO:
        return GENERIC_VIDEO
    scheduler = type(getattr(pipe, "scheduler", None)).__name__
    return FEW_STEP_IMAGE if scheduler in FEW_STEP_SCHEDULERS else GENERIC_IMAGE


def apply_switches(pipe: Any, config: ModelConfig) -> None:
    """The speed switches a model's entry turns on (see ``benchmarks/bench_gpu.py`` for their effect)."""
    modules = [m for m in (getattr(pipe, "unet", None), getattr(pipe, "vae", None)) if m is not None]
    if config.channels_last:
        for module in modules:
            module.to(memory_format=torch.channels_last)
    if config.fuse_qkv and hasattr(pipe, "fuse_qkv_projections"):
        pipe.fuse_qkv_projections()
    if config.compile != "off" and getattr(pipe, "unet", None) is not None:
        # Compiled lazily, on the first call of each shape: the pool warms it up before serving.
        pipe.unet = torch.compile(pipe.unet, mode=config.compile)


def _load_builtin(source: str, seed: int, dtype: torch.dtype) -> Any:
    from diffusers import DiffusionPipeline

    # Written and read back so the tiny presets take the same loading path as downloaded weights.
    with tempfile.TemporaryDirectory(prefix="memebot-tiny-") as folder:
        _BUILTIN[source](Path(folder), seed)
        return DiffusionPipeline.from_pretrained(folder, dtype=dtype)


def _load_pretrained(source: str, name: str, config: ModelConfig, dtype: torch.dtype) -> Any:
    from diffusers import DiffusionPipeline

    local = Path(source).expanduser()
    if source.startswith((".", "/", "~")) and not local.is_dir():
        hub = (
            config.name
            if "/" in config.name and not config.name.startswith((".", "/", "~"))
            else "OWNER/MODEL"
        )
        raise ModelLoadError(
            f"model {name}: folder {local} does not exist. {_ADVICE.format(source=hub, name=name)}"
        )
    try:
        return DiffusionPipeline.from_pretrained(
            str(local) if local.is_dir() else source,
            dtype=dtype,
            cache_dir=config.cache_dir,
            local_files_only=config.offline,
        )
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"could not load model {name} from {source} ({first_line(error)}). "
            + _ADVICE.format(source=source, name=name)
        ) from error


_ADVICE = (
    "Download it on a machine with internet (`hf download {source} --local-dir models/{name}`), copy the "
    "folder here and set path: models/{name} and offline: true on the model's entry under models:, or "
    "use the built-in tiny for a test run without weights."
)
_TINY_VAE = (
    "tiny_vae: tiny is the random autoencoder of the built-in tiny models and would turn {name}'s pictures "
    "into noise; use a real tiny autoencoder: `hf download madebyollin/taesd --local-dir models/taesd` and "
    "tiny_vae: models/taesd (or remove tiny_vae)"
)
#: Sentences of library errors that point at a traceback the user is not shown.
_TRACEBACK_HINTS = ("check out the root cause in the stacktrace above", "see the traceback above")


def first_line(error: BaseException) -> str:
    """The first line of what went wrong; where it points at a traceback nobody sees, its cause's instead."""
    line = next((part.strip() for part in str(error).splitlines() if part.strip()), "")
    sentences = line.split(". ")
    kept = [s for s in sentences if not any(hint in s.lower() for hint in _TRACEBACK_HINTS)]
    text = ". ".join(kept).strip(" .")
    cause = error.__cause__ or error.__context__
    if len(kept) < len(sentences) and cause is not None:
        text = f"{text}: {first_line(cause)}" if text else first_line(cause)
    return text or type(error).__name__


def _kind_of(pipe: Any, config: ModelConfig) -> Kind:
    if config.kind != "auto":
        return Kind(config.kind)
    return Kind.VIDEO if "Video" in type(pipe).__name__ else Kind.IMAGE


def _load_tiny_vae(config: ModelConfig, device: torch.device, dtype: torch.dtype) -> Any:
    from diffusers import AutoencoderTiny

    if config.tiny_vae == "tiny":
        vae = tiny_autoencoder(config.seed)
    else:
        try:
            vae = AutoencoderTiny.from_pretrained(
                config.tiny_vae, cache_dir=config.cache_dir, local_files_only=config.offline
            )
        except (OSError, ValueError) as error:
            raise ModelLoadError(
                f"could not load model.tiny_vae {config.tiny_vae!r}: {error}. "
                "Point it at a downloaded folder (e.g. madebyollin/taesd), or remove it."
            ) from error
    return vae.to(device=device, dtype=dtype)
