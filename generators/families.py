"""Model families as rows of data: what each kind of diffusers pipeline can do and how it is driven.

A family is known by the pipeline classes it covers (the ``_class_name`` a folder's ``model_index.json``
names, or the class a loaded pipeline is), so the bot side can tell, without torch, which flags a model
honours: whether it takes a negative prompt (natively, or only through true classifier-free guidance,
as FLUX.1 does), whether it can remix a picture (an image-to-image sibling) or animate one (an
image-to-video sibling, or it is an image-to-video pipeline itself), how its image-to-image form counts
the steps it runs, which frame counts its clips take, and its defaults. The worker asks the loaded
pipeline's own call signature for the rest (``generators.pipelines.traits``); everything after loading
asks these rows and those traits, never the class name.

The layout follows diffusers (one pipeline per family, siblings in plain tables) and the facts come from
the pipelines' own ``__call__`` and the model cards.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from generators.requests import Kind

#: How a family's pipeline takes a negative prompt: its own argument, only with true classifier-free
#: guidance (``true_cfg_scale > 1``, twice the work), or not at all.
Negative = Literal["native", "true_cfg", "none"]
#: How an image-to-image pipeline turns (steps, strength) into the steps it runs: ``floor`` runs
#: ``int(steps × strength)`` (Stable Diffusion, SDXL); ``flow`` skips ``int(steps − steps × strength)``
#: and runs the rest (flow-matching pipelines: SD 3, FLUX), one more at some strengths.
StepRule = Literal["floor", "flow"]
#: How the latents a step callback sees are laid out: ``plain`` (B, C, H, W), ``frames`` (B, C, F, H, W),
#: ``frames_first`` (B, F, C, H, W: CogVideoX), ``packed_2x2`` (B, H/2·W/2, 4C: FLUX), ``packed`` (B,
#: F·H·W, C: LTX-Video).
Layout = Literal["plain", "frames", "frames_first", "packed_2x2", "packed"]


@dataclass(frozen=True, slots=True)
class Family:
    """One family of pipelines: its capabilities, its latents and its defaults."""

    name: str
    title: str
    kind: Kind
    classes: tuple[str, ...]
    negative: Negative = "native"
    #: The image-to-image sibling's class ("" when there is none): a remix runs it on the same weights.
    remix: str = ""
    step_rule: StepRule = "floor"
    #: The image-to-video form: "self" when the pipeline itself starts from a picture, a class built on
    #: the same weights, or "" when the family has none on these weights.
    animate: str = ""
    #: Whether the pipeline also takes a prompt (Stable Video Diffusion takes only a picture).
    prompt: bool = True
    #: Whether every request must bring a picture (image-to-video checkpoints).
    needs_picture: bool = False
    layout: Layout = "plain"
    latent_channels: int = 4
    #: Clips: frame counts are ``frames_step × k + 1`` (1: any count).
    frames_step: int = 1
    #: Published tiny autoencoders that decode this family's latents (for previews and fast decode).
    tiny_vaes: tuple[str, ...] = ()
    steps: int = 25
    guidance: float = 7.0
    size: int = 512
    frames: int = 16
    fps: int = 8
    #: true_cfg families: the scale a negative prompt turns on.
    true_cfg: float = 4.0
    #: The pipeline's denoiser component: what compile, channels-last and quantisation act on.
    denoiser: str = "transformer"

    def takes_picture(self) -> bool:
        """Whether a request of this family may start from a picture (a remix or an animation)."""
        return bool(self.remix or self.animate)

    def valid_frames(self, frames: int) -> bool:
        """Whether a clip of ``frames`` frames fits this family's temporal compression."""
        return frames >= 1 and (frames - 1) % self.frames_step == 0

    def nearest_frames(self, frames: int) -> int:
        """The valid frame count nearest ``frames`` (rounding up)."""
        step = self.frames_step
        return max(1, -(-(frames - 1) // step) * step + 1)


_SD_VAES = ("madebyollin/taesd",)
_COGVIDEOX = Family(
    "cogvideox",
    "CogVideoX",
    Kind.VIDEO,
    ("CogVideoXPipeline",),
    layout="frames_first",
    latent_channels=16,
    frames_step=8,  # 4× in time, decoded in pairs of latent frames: 8k+1 comes back whole
    steps=50,
    guidance=6.0,
    size=576,
    frames=49,
)

_LTX = Family(
    "ltx",
    "LTX-Video",
    Kind.VIDEO,
    ("LTXPipeline",),
    animate="LTXImageToVideoPipeline",
    layout="packed",
    latent_channels=128,
    frames_step=8,
    steps=40,
    guidance=3.0,
    size=576,
    frames=97,
    fps=24,
)

_WAN = Family(
    "wan",
    "Wan 2.x",
    Kind.VIDEO,
    ("WanPipeline",),
    layout="frames",
    latent_channels=16,
    frames_step=4,
    steps=30,
    guidance=5.0,
    size=640,
    frames=81,
    fps=16,
)


def _image_to_video(text_to_video: Family, name: str, title: str, cls: str) -> Family:
    """An image-to-video checkpoint of a clip family: its latents and defaults, and it needs a picture."""
    return dataclasses.replace(
        text_to_video, name=name, title=title, classes=(cls,), animate="self", needs_picture=True
    )


FAMILIES: tuple[Family, ...] = (
    Family(
        "stable-diffusion",
        "Stable Diffusion 1.x/2.x",
        Kind.IMAGE,
        ("StableDiffusionPipeline", "LatentConsistencyModelPipeline"),
        denoiser="unet",
        remix="StableDiffusionImg2ImgPipeline",
        tiny_vaes=_SD_VAES,
    ),
    Family(
        "sdxl",
        "Stable Diffusion XL",
        Kind.IMAGE,
        ("StableDiffusionXLPipeline",),
        denoiser="unet",
        remix="StableDiffusionXLImg2ImgPipeline",
        tiny_vaes=("madebyollin/taesdxl",),
        steps=30,
        guidance=5.0,
        size=1024,
    ),
    Family(
        "sd3",
        "Stable Diffusion 3 / 3.5",
        Kind.IMAGE,
        ("StableDiffusion3Pipeline",),
        remix="StableDiffusion3Img2ImgPipeline",
        step_rule="flow",
        latent_channels=16,
        tiny_vaes=("madebyollin/taesd3",),
        steps=28,
        guidance=7.0,
        size=1024,
    ),
    Family(
        "flux",
        "FLUX.1",
        Kind.IMAGE,
        ("FluxPipeline",),
        negative="true_cfg",
        remix="FluxImg2ImgPipeline",
        step_rule="flow",
        layout="packed_2x2",
        latent_channels=16,
        tiny_vaes=("madebyollin/taef1",),
        steps=28,
        guidance=3.5,
        size=1024,
    ),
    Family(
        "pixart-sigma",
        "PixArt-Σ",
        Kind.IMAGE,
        ("PixArtSigmaPipeline", "PixArtAlphaPipeline"),
        tiny_vaes=("madebyollin/taesdxl",),
        steps=20,
        guidance=4.5,
        size=1024,
    ),
    Family(
        "sana",
        "Sana",
        Kind.IMAGE,
        ("SanaPipeline",),
        latent_channels=32,
        steps=20,
        guidance=4.5,
        size=1024,
    ),
    Family(
        "modelscope",
        "ModelScope text-to-video",
        Kind.VIDEO,
        ("TextToVideoSDPipeline",),
        denoiser="unet",
        layout="frames",
        tiny_vaes=_SD_VAES,
        guidance=9.0,
        size=256,
    ),
    Family(
        "animatediff",
        "AnimateDiff",
        Kind.VIDEO,
        ("AnimateDiffPipeline",),
        denoiser="unet",
        layout="frames",
        tiny_vaes=_SD_VAES,
        steps=4,
        guidance=1.0,
        size=512,
    ),
    _COGVIDEOX,
    _LTX,
    _WAN,
    _image_to_video(_COGVIDEOX, "cogvideox-i2v", "CogVideoX image-to-video", "CogVideoXImageToVideoPipeline"),
    _image_to_video(_LTX, "ltx-i2v", "LTX-Video image-to-video", "LTXImageToVideoPipeline"),
    _image_to_video(_WAN, "wan-i2v", "Wan 2.x image-to-video", "WanImageToVideoPipeline"),
    Family(
        "svd",
        "Stable Video Diffusion",
        Kind.VIDEO,
        ("StableVideoDiffusionPipeline",),
        denoiser="unet",
        negative="none",
        animate="self",
        needs_picture=True,
        prompt=False,
        layout="frames_first",
        steps=25,
        guidance=3.0,
        size=576,
        frames=14,
        fps=7,
    ),
)
_BY_CLASS = {cls: family for family in FAMILIES for cls in family.classes}
_BY_NAME = {family.name: family for family in FAMILIES}


def generic(kind: Kind) -> Family:
    """The row for a pipeline no family lists: what its call signature shows decides the rest at load.

    Until it is loaded, a remix or an animation is not offered (refused up front, naming the models
    that can); a negative prompt is, since most pipelines take one.
    """
    if kind is Kind.VIDEO:
        return Family("generic-video", "a text-to-video pipeline", kind, (), layout="frames", size=256)
    return Family("generic-image", "a text-to-image pipeline", kind, (), remix="")


def family_named(name: str) -> Family:
    """The family called ``name``; KeyError when there is none."""
    return _BY_NAME[name]


def family_of_class(class_name: str) -> Family | None:
    """The family a pipeline class belongs to, if any family lists it."""
    return _BY_CLASS.get(class_name)


def pipeline_class(folder: Path) -> str | None:
    """The pipeline class a model folder's ``model_index.json`` names; None when it names none."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = index.get("_class_name") if isinstance(index, dict) else None
    return name if isinstance(name, str) and name else None


def kind_of_class(class_name: str) -> Kind:
    """Image or video, for a pipeline class: the family's, else what diffusers' class names say."""
    family = family_of_class(class_name)
    if family is not None:
        return family.kind
    return Kind.VIDEO if any(word in class_name for word in ("Video", "AnimateDiff")) else Kind.IMAGE


def scheduler_extra_steps(folder: Path) -> int:
    """Steps a folder's scheduler runs beyond those asked for: PNDM's PLMS form runs one more."""
    try:
        config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    if isinstance(config, dict) and config.get("_class_name") == "PNDMScheduler":
        return 1 if config.get("skip_prk_steps", False) else 0
    return 0


def denoising_steps(steps: int, strength: float | None, rule: StepRule) -> int:
    """The steps an image-to-image call runs of ``steps`` scheduled at ``strength`` (all without one)."""
    if strength is None:
        return steps
    if rule == "flow":
        return steps - int(max(steps - steps * strength, 0))
    return min(int(steps * strength), steps)


def min_steps(strength: float, rule: StepRule = "floor") -> int:
    """The fewest scheduled steps that leave at least one denoising step at ``strength``."""
    steps = 1
    while denoising_steps(steps, strength, rule) < 1:
        steps += 1
    return steps
