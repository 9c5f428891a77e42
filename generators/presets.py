"""Named models: what to load for each preset, its family, and the defaults from its model card.

Light on purpose: a bot describes the models its workers run without importing torch. The README's model
table is this one, with the licences and the memory each needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from generators.families import Family, family_named, family_of_class, generic, kind_of_class, pipeline_class
from generators.requests import Kind

#: Sources of the built-in random-weight pipelines: ``builtin:<family>`` (see generators.pipelines.tiny).
BUILTIN = "builtin:"


@dataclass(frozen=True, slots=True)
class Preset:
    """A model known by name, with the settings it was trained to run at."""

    name: str
    source: str
    family: str
    steps: int
    guidance: float
    size: int
    max_steps: int = 50
    frames: int = 16
    fps: int = 8
    max_work: float = 64.0  # megapixel-steps, see ModelInfo.max_work
    licence: str = ""
    #: GPU memory to run it whole in bfloat16/float16, in GB (from the model card or the weights' size).
    memory_gb: float | None = None
    note: str = ""
    #: AnimateDiff: the motion module ("repo:file") that makes the base model move.
    motion_adapter: str = ""

    @property
    def kind(self) -> Kind:
        """Image or video: its family's."""
        return family_named(self.family).kind


def _tiny(name: str, family: str, builder: str = "", **defaults: float) -> Preset:
    # Random weights built in code: no download, same pixels on every machine. Their caps allow every
    # request the default limits allow.
    kind = family_named(family).kind
    size = int(defaults.pop("size", 256 if kind is Kind.IMAGE else 128))
    frames = int(defaults.pop("frames", 9))
    work = float(defaults.pop("max_work", 40 if kind is Kind.IMAGE else 20))
    source = BUILTIN + (builder or family)
    return Preset(name, source, family, 4, 5.0, size, frames=frames, max_work=work, licence="MIT")


_APACHE = "Apache-2.0"
PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        _tiny("tiny", "stable-diffusion", "sd"),
        _tiny("tiny-video", "modelscope", frames=16),
        _tiny("tiny-sdxl", "sdxl"),
        _tiny("tiny-sd3", "sd3"),
        _tiny("tiny-flux", "flux"),
        _tiny("tiny-flux-dev", "flux", "flux-dev"),
        _tiny("tiny-pixart", "pixart-sigma"),
        _tiny("tiny-sana", "sana"),
        _tiny("tiny-animatediff", "animatediff"),
        _tiny("tiny-cogvideox", "cogvideox"),
        _tiny("tiny-ltx", "ltx"),
        _tiny("tiny-wan", "wan"),
        _tiny("tiny-wan-i2v", "wan-i2v"),
        _tiny("tiny-cogvideox-i2v", "cogvideox-i2v"),
        _tiny("tiny-svd", "svd"),
        # Adversarial diffusion distillation: 1-4 steps, trained without classifier-free guidance.
        # 9 images x 4 steps at its largest size (576x512) is 10.1 megapixel-steps.
        Preset(
            "sd-turbo",
            "stabilityai/sd-turbo",
            "stable-diffusion",
            1,
            0.0,
            512,
            max_steps=4,
            max_work=12,
            licence="Stability AI Community License",
            memory_gb=3,
        ),
        Preset(
            "sdxl-turbo",
            "stabilityai/sdxl-turbo",
            "sdxl",
            1,
            0.0,
            512,
            max_steps=4,
            max_work=12,
            licence="Stability AI Community License",
            memory_gb=8,
        ),
        # FLUX.1 [schnell]: timestep-distilled, 1-4 steps, no guidance; writes legible text.
        Preset(
            "flux-schnell",
            "black-forest-labs/FLUX.1-schnell",
            "flux",
            4,
            0.0,
            1024,
            max_steps=8,
            max_work=40,
            licence=_APACHE,
            memory_gb=33,
        ),
        Preset(
            "flux-dev",
            "black-forest-labs/FLUX.1-dev",
            "flux",
            28,
            3.5,
            1024,
            max_steps=50,
            max_work=260,
            licence="FLUX.1 [dev] Non-Commercial License",
            memory_gb=33,
            note="FLUX.1 [dev] Non-Commercial License: no commercial use of the outputs' model.",
        ),
        Preset(
            "sd3.5-large-turbo",
            "stabilityai/stable-diffusion-3.5-large-turbo",
            "sd3",
            4,
            0.0,
            1024,
            max_steps=8,
            max_work=40,
            licence="Stability AI Community License",
            memory_gb=28,
        ),
        Preset(
            "sana",
            "Efficient-Large-Model/Sana_1600M_1024px_diffusers",
            "sana",
            20,
            4.5,
            1024,
            max_work=190,
            licence="NVIDIA Open Model License (code Apache-2.0)",
            memory_gb=12,
        ),
        Preset(
            "pixart-sigma",
            "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
            "pixart-sigma",
            20,
            4.5,
            1024,
            max_work=190,
            licence="CreativeML Open RAIL++-M",
            memory_gb=12,
        ),
        Preset(
            "modelscope-t2v",
            "ali-vilab/text-to-video-ms-1.7b",
            "modelscope",
            25,
            9.0,
            256,
            frames=16,
            max_work=64,  # 16 frames x 50 steps at 320x256: 62.5 megapixel-steps
            licence="CC-BY-NC-ND 4.0",
            memory_gb=8,
            note="CC-BY-NC-ND 4.0: research and non-commercial use only.",
        ),
        # AnimateDiff-Lightning: a 4-step motion module on a Stable Diffusion 1.5 base.
        Preset(
            "animatediff-lightning",
            "emilianJR/epiCRealism",
            "animatediff",
            4,
            1.0,
            512,
            max_steps=8,
            frames=16,
            max_work=80,
            licence="CreativeML Open RAIL-M",
            memory_gb=8,
            motion_adapter="ByteDance/AnimateDiff-Lightning:animatediff_lightning_4step_diffusers.safetensors",
        ),
        Preset(
            "cogvideox-2b",
            "THUDM/CogVideoX-2b",
            "cogvideox",
            50,
            6.0,
            576,
            frames=49,
            max_work=900,
            licence=_APACHE,
            memory_gb=18,
        ),
        Preset(
            "ltx-video",
            "Lightricks/LTX-Video",
            "ltx",
            40,
            3.0,
            576,
            frames=97,
            fps=24,
            max_work=1300,
            licence="LTX-Video Open Weights License",
            memory_gb=18,
        ),
        Preset(
            "wan2.1-t2v-1.3b",
            "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
            "wan",
            30,
            5.0,
            640,
            frames=81,
            fps=16,
            max_work=1000,
            licence=_APACHE,
            memory_gb=16,
        ),
        Preset(
            "wan2.1-i2v-14b",
            "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
            "wan-i2v",
            30,
            5.0,
            640,
            frames=81,
            fps=16,
            max_work=1000,
            licence=_APACHE,
            memory_gb=70,
        ),
    )
}


def local_folder(name: str, path: Path | None = None) -> Path | None:
    """The folder a model entry loads from, if it names one: ``path:``, or a name that is a path."""
    if path is not None:
        return path.expanduser()
    return Path(name).expanduser() if name.startswith((".", "/", "~")) else None


def family_of(name: str, kind: str = "auto", path: Path | None = None) -> Family:
    """The family a model entry belongs to, without loading it: its preset's, its folder's, else generic.

    ``name`` is the entry's preset, hub id or folder; ``kind`` its ``kind:`` setting (auto, image, video).
    """
    preset = PRESETS.get(name)
    if preset is not None:
        return family_named(preset.family)
    folder = local_folder(name, path)
    cls = pipeline_class(folder) if folder is not None else None
    if cls is not None:
        family = family_of_class(cls)
        if family is not None:
            return family
        return generic(kind_of_class(cls) if kind == "auto" else Kind(kind))
    return generic(Kind.VIDEO if kind == "video" else Kind.IMAGE)


def kind_of(name: str, kind: str = "auto", path: Path | None = None) -> Kind:
    """The kind of model an entry names without loading it: ``kind:``, else its family's."""
    if kind != "auto":
        return Kind(kind)
    return family_of(name, kind, path).kind
