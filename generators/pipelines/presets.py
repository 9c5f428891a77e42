"""Named models: what to load for each preset and the defaults that suit it."""

from __future__ import annotations

from dataclasses import dataclass

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
