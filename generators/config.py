"""Settings of the generation side: the model, request limits, the worker and rendering.

These are sections of the bot's ``config.yaml`` (see ``bot.settings``); they live here so a GPU worker
needs nothing from the bot package to read them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from generators.presets import kind_of
from generators.requests import Kind

MIB = 1024 * 1024


class Section(BaseModel):
    """A config section: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(Section):
    """Which model to load and where it runs."""

    name: str = Field(
        "tiny",
        description="A preset (tiny, sd-turbo, flux-schnell, wan2.1-t2v-1.3b...), a hub id or a folder.",
    )
    path: Path | None = Field(None, description="Local folder with the weights; overrides the hub download.")
    kind: Literal["auto", "image", "video"] = "auto"
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, mps...")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    steps: int | None = Field(None, ge=1, description="Default steps; the preset's when unset.")
    guidance: float | None = Field(
        None, ge=0, description="Classifier-free guidance; the preset's when unset."
    )
    size: int | None = Field(None, ge=64, description="Native side in pixels; the preset's when unset.")
    frames: int | None = Field(None, ge=2, description="Frames per clip; the preset's when unset.")
    fps: int = Field(8, ge=1, le=60)
    tiny_vae: str | None = Field(
        None, description="AutoencoderTiny (hub id, folder, or 'tiny') for previews and fast decode."
    )
    fast_decode: bool = Field(False, description="Decode final images with tiny_vae too (faster, softer).")
    cache_dir: Path | None = None
    offline: bool = Field(False, description="Never touch the network; only local files and the cache.")
    seed: int = Field(0, description="Seed of the random weights of the tiny presets.")
    max_work: float | None = Field(
        None,
        gt=0,
        description="Most work one job may ask for, in megapixel-steps (images x steps x width x height"
        " / 1024²; a clip counts its frames as images); the preset's when unset.",
    )
    max_steps: int | None = Field(
        None,
        ge=1,
        description="Most steps a request may ask for; unset: the preset's, else 8 for a folder whose"
        " scheduler is a few-step one (LCM, TCD), else 50.",
    )
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = Field(
        "off",
        description="torch.compile the denoiser (UNet or transformer; CUDA graphs with reduce-overhead and"
        " max-autotune); warms up at load.",
    )
    channels_last: bool = Field(False, description="Channels-last memory format for the denoiser and VAE.")
    fuse_qkv: bool = Field(False, description="Fuse attention's query, key and value projections.")
    offload: Literal["none", "model", "sequential", "group"] = Field(
        "none",
        description="Keep weights in CPU memory and move them to the GPU as they are used: model (whole"
        " models, ~1.2x slower), group (blocks streamed, slower) or sequential (layer by layer, slowest,"
        " least memory). For models larger than the GPU.",
    )
    quantize: Literal["none", "int8", "fp8", "nf4"] = Field(
        "none",
        description="Quantize the denoiser when loading: int8 or fp8 weights (torchao), or nf4"
        " (bitsandbytes, 4-bit); about half or a quarter of the memory, needs the backend installed.",
    )
    vae_tiling: bool = Field(False, description="Decode in tiles: big images and long clips in less memory.")
    vae_slicing: bool = Field(False, description="Decode a batch one image at a time: less memory.")

    @model_validator(mode="after")
    def _steps_within_max(self) -> ModelConfig:
        if self.steps is not None and self.max_steps is not None and self.steps > self.max_steps:
            raise ValueError(f"steps ({self.steps}) must not exceed max_steps ({self.max_steps})")
        return self


def entry_kind(config: ModelConfig) -> Literal["image", "video"]:
    """ "image" or "video" for a model entry, without loading it (its kind, preset or folder says)."""
    return "video" if kind_of(config.name, config.kind, config.path) is Kind.VIDEO else "image"


_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
#: The built-in defaults: a grid model and a clip model, both without a download.
BUILTIN_MODELS = ("tiny", "tiny-video")


def _builtin_entries() -> dict[str, ModelConfig]:
    return {name: ModelConfig(name=name) for name in BUILTIN_MODELS}


class ModelsConfig(Section):
    """The models one bot serves, by the name users type after ``--model``, and the defaults.

    Each entry takes the settings of a ``model:`` section; its ``name`` (the preset, hub id or folder)
    defaults to the entry's own name, so ``tiny: {}`` serves the built-in tiny preset.
    """

    image: str | None = Field("tiny", description="The model for requests without --model or --video.")
    video: str | None = Field("tiny-video", description="The model for --video and /animate.")
    entries: dict[str, ModelConfig] = Field(default_factory=_builtin_entries)

    @model_validator(mode="before")
    @classmethod
    def _name_entries(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("entries"), dict):
            entries = {}
            for key, entry in data["entries"].items():
                entry = {} if entry is None else entry
                if isinstance(entry, dict) and "name" not in entry:
                    entry = {**entry, "name": str(key)}
                entries[key] = entry
            data = {**data, "entries": entries}
        return data

    @model_validator(mode="after")
    def _defaults_exist(self) -> ModelsConfig:
        if not self.entries:
            raise ValueError("list at least one model under entries")
        for key in self.entries:
            if not _MODEL_NAME.match(key):
                raise ValueError(
                    f"model name {key!r} must be 1-32 lowercase letters, digits, '.', '_' or '-'"
                )
        for which, default in (("image", self.image), ("video", self.video)):
            if default is not None and default not in self.entries:
                names = ", ".join(self.entries)
                raise ValueError(f"{which}: {default!r} is not one of the entries ({names})")
        if self.image is None and self.video is None:
            raise ValueError("set image or video to one of the entries")
        if self.image is not None and entry_kind(self.entries[self.image]) != "image":
            raise ValueError(f"image: {self.image!r} is not an image model (set its kind: image)")
        if self.video is not None and entry_kind(self.entries[self.video]) != "video":
            raise ValueError(f"video: {self.video!r} is not a clip model (set its kind: video)")
        return self

    @classmethod
    def single(cls, model: ModelConfig, kind: Literal["image", "video"]) -> ModelsConfig:
        """One model, the default for its kind: what an old ``model:`` section means."""
        name = model.name if _MODEL_NAME.match(model.name) else "default"
        defaults = {"image": name, "video": None} if kind == "image" else {"image": None, "video": name}
        return cls(entries={name: model}, **defaults)


class LimitsConfig(Section):
    """What one request may ask for."""

    max_prompt_chars: int = Field(600, ge=1)
    default_n: int = Field(9, ge=1, le=9)
    max_n: int = Field(9, ge=1, le=9)
    max_steps: int = Field(50, ge=1)
    max_aspect: float = Field(3.0, ge=1.0, description="Longest side over shortest side.")
    max_side: int = Field(1024, ge=64, description="Largest width or height in pixels.")
    max_caption_chars: int = Field(120, ge=1)
    max_image_bytes: int = Field(8 * MIB, ge=1024, description="Largest picture a member may send.")
    max_image_pixels: int = Field(
        4096 * 4096,
        ge=64 * 64,
        description="Most pixels a member's picture may declare (checked before decoding).",
    )
    allow_video: bool = True
    default_strength: float = Field(
        0.6, gt=0, le=1, description="How much of a picture a remix redraws when --strength is not given."
    )

    @model_validator(mode="after")
    def _default_within_max(self) -> LimitsConfig:
        if self.default_n > self.max_n:
            raise ValueError(f"default_n ({self.default_n}) must not exceed max_n ({self.max_n})")
        return self


class WorkerConfig(Section):
    """How the one worker schedules and batches jobs."""

    batching: bool = True
    max_batch: int = Field(8, ge=1, description="Most images in one pipeline call (unless measured).")
    measure_batch: bool = Field(
        True,
        description="On CUDA, measure the largest batch per model and size once (up to 64) and use it"
        " instead of max_batch.",
    )
    per_user_queue: int = Field(3, ge=1, description="Jobs one user may have queued at once.")
    global_queue: int = Field(200, ge=1, description="Jobs queued in all.")
    preview_every: int = Field(0, ge=0, description="Send a preview every K steps (0: off).")
    results_dir: Path = Path("data/results")
    max_loaded_models: int = Field(2, ge=1, description="Models kept loaded at once (least recent goes).")
    max_model_memory_gb: float | None = Field(
        None, gt=0, description="Memory the loaded models may use (measured after each load); none: no cap."
    )
    load_models: Literal["first_use", "at_start"] = "first_use"
    evict_to: Literal["free", "cpu"] = Field(
        "free", description="What an evicted model becomes: freed, or parked in CPU memory (GPU only)."
    )
    switch_after: int = Field(
        4, ge=0, description="Jobs of a loaded model that may overtake a waiting job before a switch."
    )
    max_job_s: float = Field(
        300.0,
        ge=0,
        description="Seconds one job may denoise before it is stopped and fails (0: no limit); a"
        " pipeline call of several jobs gets this much per job.",
    )


class RenderConfig(Section):
    """How results are drawn and encoded."""

    budget_bytes: int = Field(10 * MIB, ge=64 * 1024, description="Default size limit of one file.")
    number_tiles: bool = False
    embed_metadata: bool = True
    clip_formats: tuple[Literal["gif", "mp4", "webp"], ...] = ("gif", "mp4", "webp")
