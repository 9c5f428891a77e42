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
    max_work: float = 64.0  # megapixel-steps, see ModelInfo.max_work
    note: str = ""


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        # Random weights built in code: no download, same pixels on every machine. Their caps allow
        # every request the default limits allow (9 images x 50 steps at 320x256 is 35 megapixel-steps).
        Preset("tiny", "builtin:tiny", Kind.IMAGE, steps=4, guidance=5.0, size=256, max_work=40),
        Preset("tiny-video", "builtin:tiny-video", Kind.VIDEO, steps=4, guidance=5.0, size=128, max_work=20),
        # Adversarial diffusion distillation: 1-4 steps, trained without classifier-free guidance.
        # 9 images x 4 steps at its largest size (576x512) is 10.1 megapixel-steps.
        Preset(
            "sd-turbo",
            "stabilityai/sd-turbo",
            Kind.IMAGE,
            steps=1,
            guidance=0.0,
            size=512,
            max_steps=4,
            max_work=12,
        ),
        Preset(
            "modelscope-t2v",
            "ali-vilab/text-to-video-ms-1.7b",
            Kind.VIDEO,
            steps=25,
            guidance=9.0,
            size=256,
            frames=16,
            max_work=64,  # 16 frames x 50 steps at 320x256: 62.5 megapixel-steps
            note="CC-BY-NC-ND 4.0: research and non-commercial use only.",
        ),
    )
}

#: Defaults for a hub id or folder that is not a preset (a Stable Diffusion 1.x/2.x checkpoint). The
#: work cap, 64 megapixel-steps, is a 9-image grid at 25 steps and 512² (about half a minute on a
#: mid-range GPU); a larger model (``size: 1024``) gets fewer images or steps unless it sets ``max_work``.
GENERIC_IMAGE = Preset("custom", "", Kind.IMAGE, steps=25, guidance=7.0, size=512)
GENERIC_VIDEO = Preset("custom", "", Kind.VIDEO, steps=25, guidance=9.0, size=256)
#: A folder whose scheduler is made for a few steps (LCM, TCD): more would only cost time.
FEW_STEP_IMAGE = Preset("custom", "", Kind.IMAGE, steps=4, guidance=1.0, size=512, max_steps=8)
FEW_STEP_SCHEDULERS = ("LCMScheduler", "TCDScheduler")


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
        steps=min(config.steps or preset.steps, config.max_steps or preset.max_steps),
        max_steps=config.max_steps or preset.max_steps,
        guidance=preset.guidance if config.guidance is None else config.guidance,
        size=config.size or preset.size,
        frames=config.frames or preset.frames,
        fps=config.fps,
        device=device,
        dtype=dtype,
        note=preset.note,
        max_work=config.max_work or preset.max_work,
    )


def describe_model(config: ModelConfig, name: str | None = None) -> ModelInfo:
    """What ``config`` will load, without loading it: for a bot whose workers run the model elsewhere.

    A hub id or folder that is not a preset counts as an image model unless ``kind`` says video.
    """
    kind = Kind(kind_of(config))
    preset = PRESETS.get(config.name) or (GENERIC_VIDEO if kind is Kind.VIDEO else GENERIC_IMAGE)
    return model_info(name or config.name, config, preset, kind, device="not loaded", dtype=config.dtype)
