"""Settings of the generation side: the model, request limits, the worker and rendering.

These are sections of the bot's ``config.yaml`` (see ``bot.settings``); they live here so a GPU worker
needs nothing from the bot package to read them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIB = 1024 * 1024


class Section(BaseModel):
    """A config section: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(Section):
    """Which model to load and where it runs."""

    name: str = Field(
        "tiny",
        description="A preset (tiny, tiny-video, sd-turbo, modelscope-t2v), a hub id or a local folder.",
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


class LimitsConfig(Section):
    """What one request may ask for."""

    max_prompt_chars: int = Field(600, ge=1)
    default_n: int = Field(9, ge=1, le=9)
    max_n: int = Field(9, ge=1, le=9)
    max_steps: int = Field(50, ge=1)
    max_aspect: float = Field(3.0, ge=1.0, description="Longest side over shortest side.")
    max_side: int = Field(1024, ge=64, description="Largest width or height in pixels.")
    max_caption_chars: int = Field(120, ge=1)
    allow_video: bool = True

    @model_validator(mode="after")
    def _default_within_max(self) -> LimitsConfig:
        if self.default_n > self.max_n:
            raise ValueError(f"default_n ({self.default_n}) must not exceed max_n ({self.max_n})")
        return self


class WorkerConfig(Section):
    """How the one worker schedules and batches jobs."""

    batching: bool = True
    max_batch: int = Field(8, ge=1, description="Most images in one pipeline call.")
    per_user_queue: int = Field(3, ge=1, description="Jobs one user may have queued at once.")
    global_queue: int = Field(200, ge=1, description="Jobs queued in all.")
    preview_every: int = Field(0, ge=0, description="Send a preview every K steps (0: off).")
    results_dir: Path = Path("data/results")


class RenderConfig(Section):
    """How results are drawn and encoded."""

    budget_bytes: int = Field(10 * MIB, ge=64 * 1024, description="Default size limit of one file.")
    number_tiles: bool = False
    embed_metadata: bool = True
    clip_formats: tuple[Literal["gif", "mp4", "webp"], ...] = ("gif", "mp4", "webp")
