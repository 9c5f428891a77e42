"""What a loaded pipeline's call takes and how its latents look, read once when the model loads.

diffusers' pipelines differ in small ways a generic path must survive: FLUX.1 uses a negative prompt only
with ``true_cfg_scale > 1``; ModelScope and PixArt take only the legacy ``callback`` (and PixArt
silently swallows ``callback_on_step_end`` through ``**kwargs``); some take a frame count, some binning
flags. These are read from the signature of the pipeline's own ``__call__``, not guessed from its name,
and the family row (``generators.families``) adds what a signature cannot say (latent layout).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from PIL import Image

from generators.families import Family, Layout, Negative

#: How progress reaches memebot: diffusers' ``callback_on_step_end``, the legacy ``callback``, or,
#: for a pipeline that takes neither, a hook on its scheduler's ``step``.
CallbackStyle = Literal["step_end", "legacy", "scheduler"]


@dataclass(frozen=True, slots=True)
class CallTraits:
    """The arguments one pipeline's ``__call__`` accepts that memebot uses."""

    negative: Negative
    callback: CallbackStyle
    frames_arg: str | None
    takes_size: bool
    takes_image: bool
    binning: bool
    guidance: bool
    clean_caption: bool


def call_traits(pipe: Any, family: Family) -> CallTraits:
    """Read the traits of ``pipe``'s call from its signature (the family only narrows what it allows)."""
    params = inspect.signature(type(pipe).__call__).parameters
    if "true_cfg_scale" in params and "negative_prompt" in params:
        negative: Negative = "true_cfg"
    elif "negative_prompt" in params:
        negative = "native"
    else:
        negative = "none"
    if family.negative == "none":
        negative = "none"
    if "callback_on_step_end" in params:
        style: CallbackStyle = "step_end"
    elif "callback" in params:
        style = "legacy"
    else:
        style = "scheduler"
    frames = next((name for name in ("num_frames", "video_length") if name in params), None)
    return CallTraits(
        negative=negative,
        callback=style,
        frames_arg=frames,
        takes_size="width" in params and "height" in params,
        takes_image="image" in params,
        binning="use_resolution_binning" in params,
        guidance="guidance_scale" in params,
        clean_caption="clean_caption" in params,
    )


def missing_for(traits: CallTraits, *, video: bool) -> str:
    """What a pipeline lacks for memebot to drive it ("" when nothing): named in the load error."""
    if not traits.takes_size:
        return "width and height arguments"
    if video and traits.frames_arg is None:
        return "a frame-count argument (num_frames)"
    return ""


class SchedulerHook:
    """Calls ``on_step(i)`` after each ``scheduler.step`` of a pipeline that takes no step callback.

    It wraps the scheduler's ``step`` for the length of one call, so cancelling, the time limit and
    shutdown reach pipelines whose ``__call__`` offers no hook at all.
    """

    def __init__(self, scheduler: Any, on_step: Callable[[int, torch.Tensor], None]) -> None:
        self.scheduler = scheduler
        self.on_step = on_step
        self.count = 0
        self._step: Any = None

    def __enter__(self) -> SchedulerHook:
        original = self.scheduler.step
        self._step = original

        def step(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            self.count += 1
            sample = out[0] if isinstance(out, tuple) else getattr(out, "prev_sample", None)
            self.on_step(self.count, sample if isinstance(sample, torch.Tensor) else torch.empty(0))
            return out

        self.scheduler.step = step
        return self

    def __exit__(self, *exc: object) -> None:
        del self.scheduler.step  # the instance attribute goes; the class's method shows again


# Stable Diffusion's latent channels → RGB: a least-squares fit that gives a recognisable preview for the
# price of one small matrix product (no VAE decode).
_SD_RGB = torch.tensor(
    [
        [0.3512, 0.2297, 0.3227],
        [0.3250, 0.4974, 0.2350],
        [-0.2829, 0.1762, 0.2721],
        [-0.2120, -0.2616, -0.7177],
    ]
)


def latent_frame(latents: torch.Tensor, index: int, layout: Layout, height: int, width: int) -> torch.Tensor:
    """Slot ``index``'s latents as one (C, h, w) picture: a clip's first frame, packed tokens unpacked.

    ``height`` and ``width`` are the output's, so a packed sequence's grid can be told from its
    length. Raises ValueError when the shape does not fit the layout.
    """
    latent = latents[index]
    if layout == "frames":
        return latent[:, 0]
    if layout == "frames_first":
        return latent[0]
    if layout == "packed_2x2":
        tokens, features = latent.shape
        rows = _grid_rows(tokens, height, width)
        cols = tokens // rows
        channels = features // 4
        grid = latent.reshape(rows, cols, channels, 2, 2).permute(2, 0, 3, 1, 4)
        return grid.reshape(channels, rows * 2, cols * 2)
    if layout == "packed":
        tokens, features = latent.shape
        for frames in range(1, tokens + 1):
            if tokens % frames == 0:
                try:
                    rows = _grid_rows(tokens // frames, height, width)
                except ValueError:
                    continue
                grid = latent[: tokens // frames].reshape(rows, -1, features)
                return grid.permute(2, 0, 1)
        raise ValueError(f"cannot unpack {tokens} tokens for {width}x{height}")
    if latent.ndim == 4:  # an unlisted video pipeline: (C, F, H, W)
        return latent[:, 0]
    return latent


def _grid_rows(tokens: int, height: int, width: int) -> int:
    rows = round(math.sqrt(tokens * height / width))
    if rows < 1 or tokens % rows:
        raise ValueError(f"{tokens} tokens do not make a {width}:{height} grid")
    return rows


def latent_preview(latent: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """A (C, h, w) latent as an RGB picture of ``size``: SD's fitted matrix for 4 channels, else the
    latent's own three main directions (a principal-component projection works for any channel count)."""
    values = latent.float().cpu()
    channels = values.shape[0]
    flat = values.reshape(channels, -1)
    if channels == 4:
        rgb = torch.einsum("cn,cr->nr", flat, _SD_RGB)
        rgb = (rgb + 1.0) * 127.5
    else:
        centred = flat - flat.mean(dim=1, keepdim=True)
        _, _, basis = torch.linalg.svd(centred.T, full_matrices=False)
        rgb = centred.T @ basis[: min(3, channels)].T
        if rgb.shape[1] < 3:
            rgb = torch.cat([rgb, rgb[:, :1].expand(-1, 3 - rgb.shape[1])], dim=1)
        low, high = rgb.min(dim=0).values, rgb.max(dim=0).values
        rgb = (rgb - low) / (high - low).clamp(min=1e-6) * 255
    pixels = rgb.reshape(values.shape[1], values.shape[2], 3).clamp(0, 255).to(torch.uint8).numpy()
    return Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR)
