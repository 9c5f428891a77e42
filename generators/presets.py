"""Named models: what to load for each preset and the defaults that suit it.

Light on purpose: a bot describes the models its workers run without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from generators.config import ModelConfig
from generators.models import ModelInfo
from generators.requests import Kind


@dataclass(frozen=True, slots=True)
class Preset:
    """A model known by name, with the settings it was trained to run at."""

    name: str
    source: str
    kind: Kind
    steps: int
    guidance: float
    size: int
    max_steps: int = 50
    frames: int = 16
    note: str = ""


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        # Random weights built in code: no download, same pixels on every machine.
        Preset("tiny", "builtin:tiny", Kind.IMAGE, steps=4, guidance=5.0, size=256),
        Preset("tiny-video", "builtin:tiny-video", Kind.VIDEO, steps=4, guidance=5.0, size=128, frames=16),
        # Adversarial diffusion distillation: 1-4 steps, trained without classifier-free guidance.
        Preset("sd-turbo", "stabilityai/sd-turbo", Kind.IMAGE, steps=1, guidance=0.0, size=512, max_steps=4),
        Preset(
            "modelscope-t2v",
            "ali-vilab/text-to-video-ms-1.7b",
            Kind.VIDEO,
            steps=25,
            guidance=9.0,
            size=256,
            frames=16,
            note="CC-BY-NC-ND 4.0: research and non-commercial use only.",
        ),
    )
}

#: Defaults for a hub id or folder that is not a preset (a Stable Diffusion 1.x/2.x checkpoint).
GENERIC_IMAGE = Preset("custom", "", Kind.IMAGE, steps=25, guidance=7.0, size=512)
GENERIC_VIDEO = Preset("custom", "", Kind.VIDEO, steps=25, guidance=9.0, size=256)


def kind_of(config: ModelConfig) -> Literal["image", "video"]:
    """The kind of model ``config`` names without loading it: ``kind:``, else the preset's, else image."""
    if config.kind != "auto":
        return config.kind
    preset = PRESETS.get(config.name)
    return "video" if preset is not None and preset.kind is Kind.VIDEO else "image"


def model_info(
    name: str, config: ModelConfig, preset: Preset, kind: Kind, *, device: str, dtype: str
) -> ModelInfo:
    """Defaults from the preset, overridden by the config; ``name`` is what users call it."""
    return ModelInfo(
        name=name,
        source=str(config.path or preset.source or config.name),
        kind=kind,
        steps=config.steps or preset.steps,
        max_steps=preset.max_steps,
        guidance=preset.guidance if config.guidance is None else config.guidance,
        size=config.size or preset.size,
        frames=config.frames or preset.frames,
        fps=config.fps,
        device=device,
        dtype=dtype,
        note=preset.note,
    )


def describe_model(config: ModelConfig, name: str | None = None) -> ModelInfo:
    """What ``config`` will load, without loading it: for a bot whose workers run the model elsewhere.

    A hub id or folder that is not a preset counts as an image model unless ``kind`` says video.
    """
    kind = Kind(kind_of(config))
    preset = PRESETS.get(config.name) or (GENERIC_VIDEO if kind is Kind.VIDEO else GENERIC_IMAGE)
    return model_info(name or config.name, config, preset, kind, device="not loaded", dtype=config.dtype)
