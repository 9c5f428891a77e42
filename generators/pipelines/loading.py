"""Turn a model entry into a loaded backend, or a message that says what to do.

Loading is where a model's family and traits are decided, once: the class that loads names the family
row (``generators.families``), the call's signature gives the traits (``generators.pipelines.traits``),
and what the entry asks of memory (offload, quantisation, VAE tiling) and speed (compile, channels-last,
fused projections, a tiny autoencoder) is applied to whatever the pipeline calls its denoiser.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import tempfile
from pathlib import Path
from typing import Any, cast

import torch

from generators.config import ModelConfig
from generators.errors import ModelLoadError
from generators.families import (
    Family,
    family_of_class,
    generic,
    kind_of_class,
    pipeline_class,
)
from generators.models import FEW_STEP_SCHEDULERS, ModelInfo, model_info, preset_for
from generators.pipelines.backend import DiffusersBackend
from generators.pipelines.device import placement
from generators.pipelines.tiny import tiny_autoencoder
from generators.pipelines.tiny_families import TINY
from generators.pipelines.traits import call_traits, missing_for
from generators.presets import BUILTIN, PRESETS, family_of, local_folder
from generators.requests import Kind

log = logging.getLogger(__name__)


def load_backend(config: ModelConfig, name: str | None = None) -> DiffusersBackend:
    """Load the configured model onto its device; raise ModelLoadError with advice when it can't be.

    ``name`` is what users call the model (an entry of ``models:``); it defaults to ``config.name``.
    Any failure while loading, the library's own or not, becomes a ModelLoadError naming the model.
    """
    name = name or config.name
    try:
        return _load(config, name)
    except ModelLoadError:
        raise
    except torch.OutOfMemoryError as error:
        raise ModelLoadError(f"model {name} does not fit in the memory left for it") from error
    except Exception as error:
        raise ModelLoadError(f"model {name} could not be loaded: {first_line(error)}") from error


def source_of(config: ModelConfig) -> str:
    """Where an entry's weights come from: its folder, its preset's hub id or built-in, or its name."""
    preset = PRESETS.get(config.name)
    return str(config.path) if config.path else (preset.source if preset else config.name)


def _load(config: ModelConfig, name: str) -> DiffusersBackend:
    source = source_of(config)
    device, dtype = placement(config)
    builtin = source.startswith(BUILTIN)
    if config.tiny_vae == "tiny" and not builtin:
        raise ModelLoadError(_TINY_VAE.format(name=name))
    if config.offload != "none" and device.type != "cuda":
        raise ModelLoadError(
            f"model {name}: offload: {config.offload} needs a CUDA GPU (the device is {device})"
        )
    log.info("loading model %s from %s on %s (%s)", name, source, device, dtype)
    # Before loading, the family is the preset's or the folder's (what to quantize).
    family = family_of(config.name, config.kind, config.path)
    quantization = quantization_config(config, family, dtype)
    pipe = _load_builtin(source, config, dtype, quantization) if builtin else None
    if pipe is None:
        pipe = _load_pretrained(source, name, config, dtype, quantization)
    family = _family_of(pipe, config)
    _check_drivable(pipe, family, name, config)
    place(pipe, config, device)
    apply_switches(pipe, config, family)
    info = _info(pipe, name, config, family, device, dtype)
    tiny_vae = load_tiny_vae(config, family, pipe, device, dtype, name) if config.tiny_vae else None
    return DiffusersBackend(pipe, info, family, tiny_vae=tiny_vae, fast_decode=config.fast_decode)


def _family_of(pipe: Any, config: ModelConfig) -> Family:
    """The loaded pipeline's family: the row that lists its class (or a parent's), else a generic one."""
    for cls in type(pipe).__mro__:
        family = family_of_class(cls.__name__)
        if family is not None:
            return family
    kind = Kind(config.kind) if config.kind != "auto" else kind_of_class(type(pipe).__name__)
    return generic(kind)


def _check_drivable(pipe: Any, family: Family, name: str, config: ModelConfig) -> None:
    kind = Kind(config.kind) if config.kind != "auto" else family.kind
    missing = missing_for(call_traits(pipe, family), video=kind is Kind.VIDEO)
    if missing:
        raise ModelLoadError(
            f"model {name}: {type(pipe).__name__} can't be driven by memebot: its call takes no {missing}"
        )


def _info(
    pipe: Any, name: str, config: ModelConfig, family: Family, device: torch.device, dtype: torch.dtype
) -> ModelInfo:
    preset = preset_for(config, family)
    scheduler = getattr(pipe, "scheduler", None)
    if config.name not in PRESETS and type(scheduler).__name__ in FEW_STEP_SCHEDULERS:
        preset = dataclasses.replace(preset, steps=4, guidance=1.0, max_steps=8)
    dtype_name = str(dtype).removeprefix("torch.")
    info = model_info(name, config, preset, family, device=str(device), dtype=dtype_name)
    extra = max(0, count_steps(scheduler, info.steps) - info.steps)
    remix = info.remix if family.classes else _generic_remix(pipe)
    return dataclasses.replace(info, extra_steps=extra, remix=remix)


def count_steps(scheduler: Any, steps: int) -> int:
    """How many timesteps ``scheduler`` really runs for ``steps`` (PNDM's PLMS form runs one more)."""
    if scheduler is None or not hasattr(scheduler, "set_timesteps"):
        return steps
    from copy import deepcopy

    probe = deepcopy(scheduler)
    try:
        if getattr(probe.config, "use_dynamic_shifting", False):
            probe.set_timesteps(steps, mu=1.0)
        else:
            probe.set_timesteps(steps)
    except (TypeError, ValueError):
        return steps
    return len(probe.timesteps)


def _generic_remix(pipe: Any) -> bool:
    """Whether diffusers has an image-to-image form of an unlisted pipeline (its own mapping decides)."""
    from diffusers import AutoPipelineForImage2Image

    try:
        AutoPipelineForImage2Image.from_pipe(pipe)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


def quantization_config(config: ModelConfig, family: Family, dtype: torch.dtype) -> Any | None:
    """diffusers' own quantisation config for the entry's ``quantize``, on the denoiser only.

    A backend that is not installed is one clear error naming the package to install.
    """
    if config.quantize == "none":
        return None
    from diffusers import PipelineQuantizationConfig

    denoiser = family.denoiser
    if config.quantize == "nf4":
        _need("bitsandbytes", config.quantize)
        kwargs: dict[str, Any] = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_compute_dtype": dtype,
        }
        return PipelineQuantizationConfig("bitsandbytes_4bit", kwargs, components_to_quantize=[denoiser])
    _need("torchao", config.quantize)
    from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig

    kind = Int8WeightOnlyConfig() if config.quantize == "int8" else Float8WeightOnlyConfig()
    return PipelineQuantizationConfig("torchao", {"quant_type": kind}, components_to_quantize=[denoiser])


def _need(package: str, setting: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise ModelLoadError(f"quantize: {setting} needs the {package} package: pip install {package}")


def place(pipe: Any, config: ModelConfig, device: torch.device) -> None:
    """Put the pipeline on its device, or set up offloading to it; turn on VAE tiling and slicing."""
    if config.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif config.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif config.offload == "group":
        pipe.enable_group_offload(onload_device=device, offload_type="block_level", num_blocks_per_group=1)
    else:
        pipe.to(device)
    vae = getattr(pipe, "vae", None)
    if config.vae_tiling and vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
    if config.vae_slicing and vae is not None and hasattr(vae, "enable_slicing"):
        vae.enable_slicing()


def denoiser_of(pipe: Any, family: Family) -> tuple[str, Any]:
    """The attribute name and module of the pipeline's denoiser (its UNet or transformer)."""
    for attr in (family.denoiser, "transformer", "unet", "prior"):
        module = getattr(pipe, attr, None)
        if isinstance(module, torch.nn.Module):
            return attr, module
    raise ModelLoadError(f"{type(pipe).__name__} has no UNet or transformer to speed up")


def apply_switches(pipe: Any, config: ModelConfig, family: Family) -> None:
    """The speed switches an entry turns on, on the denoiser whatever it is called (bench_gpu.py)."""
    if not (config.channels_last or config.fuse_qkv or config.compile != "off"):
        return
    attr, denoiser = denoiser_of(pipe, family)
    if config.channels_last:
        vae = getattr(pipe, "vae", None)
        for module in (denoiser, vae):
            if isinstance(module, torch.nn.Module):
                cast(Any, module).to(memory_format=torch.channels_last)
    if config.fuse_qkv:
        if hasattr(pipe, "fuse_qkv_projections"):
            pipe.fuse_qkv_projections()
        elif hasattr(denoiser, "fuse_qkv_projections"):
            denoiser.fuse_qkv_projections()
    if config.compile != "off":
        # Compiled lazily, on the first call of each shape: the pool warms it up before serving.
        raise_recompile_limit()
        setattr(pipe, attr, torch.compile(denoiser, mode=config.compile))


#: Compiled code kept per compiled function: every aspect ratio (15) at two batch sizes, for a few
#: models. torch's default, 8 for everything compiled, let later shapes silently run uncompiled.
RECOMPILE_LIMIT = 64


def raise_recompile_limit() -> None:
    """Give compiled denoisers room for every size and batch memebot serves (torch shares one budget)."""
    import torch._dynamo.config as dynamo

    dynamo.recompile_limit = max(dynamo.recompile_limit, RECOMPILE_LIMIT)
    dynamo.accumulated_recompile_limit = max(dynamo.accumulated_recompile_limit, RECOMPILE_LIMIT * 8)


def _load_builtin(source: str, config: ModelConfig, dtype: torch.dtype, quantization: Any) -> Any:
    from diffusers import DiffusionPipeline

    builder = TINY.get(source.removeprefix(BUILTIN))
    if builder is None:
        raise ModelLoadError(f"there is no built-in model {source.removeprefix(BUILTIN)}")
    # Written and read back so the tiny presets take the same loading path as downloaded weights.
    with tempfile.TemporaryDirectory(prefix="memebot-tiny-") as folder:
        builder(Path(folder), config.seed)
        return DiffusionPipeline.from_pretrained(folder, dtype=dtype, quantization_config=quantization)


def _load_pretrained(
    source: str, name: str, config: ModelConfig, dtype: torch.dtype, quantization: Any
) -> Any:
    from diffusers import DiffusionPipeline

    local = local_folder(config.name, config.path) or Path(source)
    hub = _hub_id(config)
    if local_folder(config.name, config.path) is not None and not local.is_dir():
        raise ModelLoadError(f"model {name}: folder {local} does not exist. {_advice(hub, local)}")
    if local.is_dir():
        _check_folder(local, name, hub)
    kwargs: dict[str, Any] = {"dtype": dtype, "quantization_config": quantization}
    preset = PRESETS.get(config.name)
    if preset is not None and preset.motion_adapter:
        kwargs["motion_adapter"] = _motion_adapter(preset.motion_adapter, config, dtype)
    try:
        return DiffusionPipeline.from_pretrained(
            str(local) if local.is_dir() else source,
            cache_dir=config.cache_dir,
            local_files_only=config.offline,
            **kwargs,
        )
    except (OSError, ValueError) as error:
        target = local if local.is_dir() else Path("models") / name
        # Offline, the library's own advice (pass local_files_only=False) contradicts the setting.
        why = "it is not in the download cache and offline: true" if config.offline else first_line(error)
        raise ModelLoadError(
            f"could not load model {name} from {source} ({why}). {_advice(hub, target)}"
        ) from error


def _check_folder(folder: Path, name: str, hub: str) -> None:
    """A folder must name a pipeline class this diffusers has, or loading it could only fail later."""
    import difflib

    import diffusers

    if not (folder / "model_index.json").is_file():
        raise ModelLoadError(f"model {name}: {folder} has no model_index.json. {_advice(hub, folder)}")
    cls = pipeline_class(folder)
    if cls is None:
        raise ModelLoadError(
            f"model {name}: {folder}/model_index.json names no pipeline class (not JSON, or no _class_name):"
            f" the download is incomplete or not a diffusers model. {_advice(hub, folder)}"
        )
    if not hasattr(diffusers, cls):
        close = difflib.get_close_matches(cls, [n for n in dir(diffusers) if n.endswith("Pipeline")], n=1)
        hint = f" (did you mean {close[0]}?)" if close else " (a newer diffusers may have it)"
        raise ModelLoadError(
            f"model {name}: {folder}/model_index.json names {cls}, which diffusers lacks{hint}"
        )


def _motion_adapter(spec: str, config: ModelConfig, dtype: torch.dtype) -> Any:
    """An AnimateDiff motion module given as ``repo:file`` (AnimateDiff-Lightning's checkpoints)."""
    from diffusers import MotionAdapter
    from huggingface_hub import hf_hub_download
    from safetensors.torch import load_file

    repo, _, file = spec.partition(":")
    path = hf_hub_download(repo, file, cache_dir=config.cache_dir, local_files_only=config.offline)
    adapter = MotionAdapter().to(dtype=dtype)
    adapter.load_state_dict(load_file(path))
    return adapter


def _hub_id(config: ModelConfig) -> str:
    """The hub id to download an entry's weights from: its preset's, else its name if it looks like one."""
    preset = PRESETS.get(config.name)
    if preset is not None and not preset.source.startswith(BUILTIN):
        return preset.source
    if "/" in config.name and not config.name.startswith((".", "/", "~")):
        return config.name
    return "OWNER/MODEL"


def _advice(hub: str, folder: Path) -> str:
    return (
        f"Download it on a machine with internet (`hf download {hub} --local-dir {folder}`), copy the "
        f"folder to {folder} here and set path: {folder} on the model's entry, or use the built-in tiny "
        "for a test run without weights."
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


def load_tiny_vae(
    config: ModelConfig, family: Family, pipe: Any, device: torch.device, dtype: torch.dtype, name: str
) -> Any:
    """The entry's tiny autoencoder, refused at load when it cannot decode this model's latents."""
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
                f"could not load model.tiny_vae {config.tiny_vae!r}: {first_line(error)}. "
                "Point it at a downloaded folder (e.g. madebyollin/taesd), or remove it."
            ) from error
    _check_tiny_vae(vae, family, pipe, name, config.tiny_vae or "")
    return vae.to(device=device, dtype=dtype)


def _check_tiny_vae(vae: Any, family: Family, pipe: Any, name: str, setting: str) -> None:
    model_vae = getattr(pipe, "vae", None)
    channels = getattr(getattr(model_vae, "config", None), "latent_channels", family.latent_channels)
    if vae.config.latent_channels != channels or family.layout in ("frames_first", "packed"):
        fits = ", ".join(family.tiny_vaes) or "none is published for it"
        raise ModelLoadError(
            f"model {name}: tiny_vae {setting} decodes {vae.config.latent_channels}-channel latents, but "
            f"{family.title} makes {channels}-channel ones (tiny autoencoders that fit: {fits}); remove "
            "tiny_vae or use one that fits"
        )
