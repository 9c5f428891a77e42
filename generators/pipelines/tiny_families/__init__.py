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
from generators.pipelines.tiny_families.video import write_cogvideox, write_ltx, write_wan

Builder = Callable[[Path, int], Path]

# Every family renders at this side; clips have FRAMES frames (9 fits LTX's 8k+1 and Wan/CogVideoX's 4k+1).
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
    "modelscope": write_tiny_video,
    "cogvideox": write_cogvideox,
    "ltx": write_ltx,
    "wan": write_wan,
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
        _video("modelscope", "ModelScope T2V: 4 channels at 1/8, any frame count; legacy `callback` only"),
        _video(
            "cogvideox",
            "CogVideoX-2b: 16 channels at 1/8, 1/4 in time, frames 4k+1, latents "
            "(batch, frames, channels, h, w)",
        ),
        _video(
            "ltx",
            "LTX-Video 0.9: 128 channels at 1/32, 1/8 in time, frames 8k+1, sides multiple of 32, "
            "packed latents; LTXImageToVideoPipeline loads the same folder",
        ),
        _video("wan", "Wan 2.1 T2V 1.3B: 16 channels at 1/8, 1/4 in time, frames 4k+1; UniPC flow scheduler"),
    )
}
