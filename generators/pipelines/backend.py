"""The one object that owns a diffusers pipeline and runs batches through it.

Diffusers' schedulers keep state between steps, so a pipeline is not thread-safe: the worker calls a
backend from its single inference thread only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from generators.models import ModelInfo
from generators.requests import BatchSpec, Kind, Slot

#: Called after each denoising step with (steps done, total steps, latents); raising stops the run.
StepCallback = Callable[[int, int, torch.Tensor], None]

# Stable Diffusion 1.x latent channels → RGB: a least-squares fit that gives a recognisable preview
# for the price of one small matrix product (no VAE decode).
_LATENT_RGB = torch.tensor(
    [
        [0.3512, 0.2297, 0.3227],
        [0.3250, 0.4974, 0.2350],
        [-0.2829, 0.1762, 0.2721],
        [-0.2120, -0.2616, -0.7177],
    ]
)


class Backend(Protocol):
    """Runs batches; one output (a list of frames, one frame for an image) per slot."""

    info: ModelInfo

    def generate(
        self,
        spec: BatchSpec,
        slots: Sequence[Slot],
        on_step: StepCallback,
        pictures: Sequence[Image.Image] = (),
    ) -> list[list[Image.Image]]:
        """Run one pipeline call; a remix call (``spec.strength``) starts slot i from ``pictures[i]``."""
        ...

    def preview(self, latents: torch.Tensor, index: int) -> Image.Image:
        """A cheap picture of slot ``index``'s current latents."""
        ...


def to_images(array: np.ndarray[Any, Any]) -> list[Image.Image]:
    """Floats in [0, 1] shaped (..., H, W, 3) to 8-bit RGB images."""
    pixels = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    return [Image.fromarray(frame) for frame in pixels.reshape(-1, *pixels.shape[-3:])]


def latent_preview(latents: torch.Tensor) -> Image.Image:
    """Project one latent (C, H, W) to a small RGB image."""
    rgb = torch.einsum("chw,cr->hwr", latents[:4].float().cpu(), _LATENT_RGB)
    pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    image = Image.fromarray(pixels)
    return image.resize((image.width * 8, image.height * 8), Image.Resampling.BILINEAR)


class DiffusersBackend:
    """A loaded diffusers pipeline (Stable Diffusion family or ModelScope text-to-video)."""

    def __init__(
        self, pipe: Any, info: ModelInfo, tiny_vae: Any | None = None, fast_decode: bool = False
    ) -> None:
        self.pipe = pipe
        self.info = info
        self.tiny_vae = tiny_vae
        self._img2img: Any | None = None
        if fast_decode and tiny_vae is not None:
            self.pipe.vae = tiny_vae
        pipe.set_progress_bar_config(disable=True)

    def to(self, device: str) -> None:
        """Move the weights (a model parked in CPU memory comes back to its GPU this way)."""
        self.pipe.to(device)
        if self.tiny_vae is not None:
            self.tiny_vae.to(device)

    def generate(
        self,
        spec: BatchSpec,
        slots: Sequence[Slot],
        on_step: StepCallback,
        pictures: Sequence[Image.Image] = (),
    ) -> list[list[Image.Image]]:
        """Run one pipeline call; every slot draws its noise from its own generator.

        A remix call (``spec.strength`` set) runs the image-to-image form of the same pipeline on
        ``pictures`` (one per slot, already at the call's size).
        """
        # CPU generators give the same noise on every device, so a seed reproduces anywhere.
        generators = [torch.Generator("cpu").manual_seed(slot.seed) for slot in slots]
        common: dict[str, Any] = {
            "prompt": [slot.prompt for slot in slots],
            "negative_prompt": [slot.negative for slot in slots],
            "width": spec.width,
            "height": spec.height,
            "num_inference_steps": spec.steps,
            "guidance_scale": self.info.guidance,
            "generator": generators,
            "output_type": "np",
        }
        with torch.inference_mode():
            if self.info.kind is Kind.VIDEO:
                if spec.strength is not None:
                    raise ValueError("clip models don't remix pictures")
                return self._video(common, spec.steps, on_step)
            if spec.strength is not None:
                if len(pictures) != len(slots):
                    raise ValueError(
                        f"a remix of {len(slots)} images needs as many pictures, not {len(pictures)}"
                    )
                del common["width"], common["height"]  # the pictures' size is the output size
                remix = {"image": list(pictures), "strength": spec.strength}
                return self._images(self.img2img(), common | remix, spec.denoising_steps, on_step)
            return self._images(self.pipe, common, spec.steps, on_step)

    def img2img(self) -> Any:
        """The image-to-image pipeline on this pipeline's own modules: no second copy of any weight."""
        if self._img2img is None:
            from diffusers import AutoPipelineForImage2Image

            self._img2img = AutoPipelineForImage2Image.from_pipe(self.pipe)
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img

    def _images(
        self, pipe: Any, common: dict[str, Any], steps: int, on_step: StepCallback
    ) -> list[list[Image.Image]]:
        def step_end(pipe: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            on_step(i + 1, steps, tensors["latents"])
            return {}

        out = pipe(**common, callback_on_step_end=step_end, callback_on_step_end_tensor_inputs=["latents"])
        return [[image] for image in to_images(out.images)]

    def _video(self, common: dict[str, Any], steps: int, on_step: StepCallback) -> list[list[Image.Image]]:
        def step(i: int, t: Any, latents: torch.Tensor) -> None:
            on_step(i + 1, steps, latents)

        out = self.pipe(**common, num_frames=self.info.frames, callback=step, callback_steps=1)
        frames = np.asarray(out.frames)
        return [to_images(clip) for clip in frames]

    def preview(self, latents: torch.Tensor, index: int) -> Image.Image:
        """Decode slot ``index`` with the tiny VAE when there is one, else project it linearly."""
        latent = latents[index]
        if latent.ndim == 4:  # video latents are (C, F, H, W): show the first frame
            latent = latent[:, 0]
        if self.tiny_vae is None:
            return latent_preview(latent)
        with torch.inference_mode():
            decoded = self.tiny_vae.decode(latent[None].to(self.tiny_vae.dtype)).sample
        array = ((decoded[0].float().cpu().permute(1, 2, 0) + 1) / 2).numpy()
        return to_images(array)[0]
