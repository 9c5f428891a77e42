"""Tiny random-weight pipelines of every family memebot serves, built offline: tests, benchmarks, demos.

Each builder writes a complete diffusers folder with ``save_pretrained`` that
``DiffusionPipeline.from_pretrained`` loads back. The components follow ``get_dummy_components()`` in
diffusers' own tests, with the latent space of the real model kept (channels, packing, frame axis, the
autoencoder's compression), so a path that works here meets the same shapes as the downloaded model.
Tokenizers are made in code: nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from generators.pipelines.tiny import write_tiny_image, write_tiny_video
from generators.pipelines.tiny_families.image import write_flux, write_flux_dev, write_sd3, write_sdxl
from generators.pipelines.tiny_families.picture_to_video import write_cogvideox_i2v, write_svd, write_wan_i2v
from generators.pipelines.tiny_families.transformer_image import write_pixart_sigma, write_sana
from generators.pipelines.tiny_families.video import write_animatediff, write_cogvideox, write_ltx, write_wan

Builder = Callable[[Path, int], Path]

# Every family renders at this side; clips have FRAMES frames (9 fits LTX's and CogVideoX's 8k+1, Wan's 4k+1).
SIZE = 64
FRAMES = 9


@dataclass(frozen=True)
class TinyInfo:
    """What a caller needs to run one tiny pipeline: its kind, size, frames and whether it takes a picture."""

    name: str
    kind: Literal["image", "video"]
    frames: int | None
    size: int
    takes_picture: bool
    notes: str
    # Keyword arguments the bare call needs at ``size`` beyond prompt, steps, size and frames.
    call_kwargs: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))


def _image(name: str, notes: str, **call_kwargs: object) -> TinyInfo:
    return TinyInfo(name, "image", None, SIZE, False, notes, MappingProxyType(call_kwargs))


def _video(name: str, notes: str, takes_picture: bool = False, **call_kwargs: object) -> TinyInfo:
    return TinyInfo(name, "video", FRAMES, SIZE, takes_picture, notes, MappingProxyType(call_kwargs))


TINY: dict[str, Builder] = {
    "sd": write_tiny_image,
    "sdxl": write_sdxl,
    "sd3": write_sd3,
    "flux": write_flux,
    "flux-dev": write_flux_dev,
    "pixart-sigma": write_pixart_sigma,
    "sana": write_sana,
    "modelscope": write_tiny_video,
    "animatediff": write_animatediff,
    "cogvideox": write_cogvideox,
    "ltx": write_ltx,
    "wan": write_wan,
    "wan-i2v": write_wan_i2v,
    "cogvideox-i2v": write_cogvideox_i2v,
    "svd": write_svd,
}

INFO: dict[str, TinyInfo] = {
    info.name: info
    for info in (
        _image("sd", "SD 1.5: 4 latent channels at 1/8; any side that is a multiple of 8"),
        _image("sdxl", "SDXL base: 4 channels at 1/8; two CLIP encoders, size/crop conditioning"),
        _image("sd3", "SD 3.5: 16 channels at 1/8, 2x2 patches (sides multiple of 16); negative prompts"),
        _image(
            "flux",
            "FLUX.1-schnell: 16 channels at 1/8 packed 2x2 (sides multiple of 16); negative "
            "prompt only with true_cfg_scale > 1; guidance_scale ignored",
        ),
        _image("flux-dev", "FLUX.1-dev: as flux, plus the guidance embedding (guidance_scale counts)"),
        _image(
            "pixart-sigma",
            "PixArt-Σ: 4 channels at 1/8, 2x2 patches; bins sizes to a 1024-px table unless "
            "use_resolution_binning=False; clean_caption (default on) wants bs4 and ftfy; "
            "legacy `callback` only",
            use_resolution_binning=False,
            clean_caption=False,
        ),
        _image(
            "sana",
            "Sana 1600M: DC-AE 32 channels at 1/32 (sides multiple of 32); bins sizes to a 1024-px table "
            "unless use_resolution_binning=False",
            use_resolution_binning=False,
        ),
        _video("modelscope", "ModelScope T2V: 4 channels at 1/8, any frame count; legacy `callback` only"),
        _video(
            "cogvideox",
            "CogVideoX-2b: 16 channels at 1/8, 1/4 in time; frames 8k+1 (other counts come back as "
            "4k or 4k+1 other frames: the decoder pairs latents); latents "
            "(batch, frames, channels, h, w)",
        ),
        _video(
            "ltx",
            "LTX-Video 0.9: 128 channels at 1/32, 1/8 in time, frames 8k+1 (8 gives 1 frame), "
            "sides multiple of 32, packed latents; LTXImageToVideoPipeline loads the same folder",
        ),
        _video(
            "wan",
            "Wan 2.1 T2V 1.3B: 16 channels at 1/8, 1/4 in time, frames 4k+1 (others rounded, with a warning)",
        ),
        _video(
            "animatediff",
            "AnimateDiff: SD 1.5 UNet + MotionAdapter, 4 channels at 1/8; 1-32 frames (more: RuntimeError)",
        ),
        _video(
            "wan-i2v",
            "Wan 2.1 I2V 14B: as wan plus a CLIP image encoder; image= is the first frame; frames 4k+1; "
            "its prompt cleaning needs ftfy installed",
            takes_picture=True,
        ),
        _video(
            "cogvideox-i2v",
            "CogVideoX-5b-I2V: 16 channels, 32 in; learned positions fix the size to 64 px (ValueError "
            "otherwise); frames 8k+1 as cogvideox",
            takes_picture=True,
        ),
        _video(
            "svd",
            "Stable Video Diffusion: image= only, no prompt; 4 channels at 1/8; any frame count (default 14)",
            takes_picture=True,
        ),
    )
}
