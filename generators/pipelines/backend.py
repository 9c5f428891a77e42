"""The one object that owns a diffusers pipeline and runs batches through it, whatever its family.

Everything family-specific was decided when the model loaded (``generators.pipelines.traits`` and the
family row): which arguments the call takes, how progress comes back, how the latents look, which
sibling remixes or animates a picture. This module only asks those answers.

Diffusers' schedulers keep state between steps, so a pipeline is not thread-safe: the worker calls a
backend from its single inference thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from generators.errors import Unsupported
from generators.families import Family
from generators.models import ModelInfo
from generators.pipelines.traits import (
    CallTraits,
    SchedulerHook,
    call_traits,
    latent_frame,
    latent_preview,
)
from generators.requests import BatchSpec, Kind, Slot

log = logging.getLogger(__name__)

#: Called after each denoising step with (steps done, total steps, latents); raising stops the run.
StepCallback = Callable[[int, int, torch.Tensor], None]


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
        """Run one pipeline call; a call with ``spec.from_pictures`` starts slot i from ``pictures[i]``."""
        ...

    def preview(self, latents: torch.Tensor, index: int) -> Image.Image | None:
        """A cheap picture of slot ``index``'s current latents (None when none can be made)."""
        ...


def to_images(array: np.ndarray[Any, Any]) -> list[Image.Image]:
    """Floats in [0, 1] shaped (..., H, W, 3) to 8-bit RGB images."""
    pixels = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    return [Image.fromarray(frame) for frame in pixels.reshape(-1, *pixels.shape[-3:])]


class DiffusersBackend:
    """A loaded diffusers pipeline of any family memebot knows, or of any that its traits can drive."""

    def __init__(
        self,
        pipe: Any,
        info: ModelInfo,
        family: Family,
        tiny_vae: Any | None = None,
        fast_decode: bool = False,
    ) -> None:
        self.pipe = pipe
        self.info = info
        self.family = family
        self.tiny_vae = tiny_vae
        self.traits: CallTraits = call_traits(pipe, family)
        self._siblings: dict[str, Any] = {}
        self._size = (info.size, info.size)
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

        A call that starts from pictures (``spec.from_pictures``; one per slot, already at the call's size)
        runs the family's image-to-image form for an image model (a remix) or its image-to-video form
        for a clip model (an animation: the picture is the first frame).
        """
        if spec.from_pictures and len(pictures) != len(slots):
            raise ValueError(
                f"a call of {len(slots)} starting from pictures needs as many, not {len(pictures)}"
            )
        self._size = (spec.width, spec.height)
        pipe = self.pipe
        if spec.from_pictures:
            pipe = self.img2img() if self.info.kind is Kind.IMAGE else self.img2video()
        traits = self.traits if pipe is self.pipe else call_traits(pipe, self.family)
        if spec.from_pictures and self.info.kind is Kind.VIDEO and len(slots) > 1:
            # Image-to-video pipelines take one picture per call.
            return [
                out
                for slot, picture in zip(slots, pictures, strict=True)
                for out in self.generate(spec, [slot], on_step, [picture])
            ]
        kwargs = self._arguments(traits, spec, slots, pictures)
        with torch.inference_mode():
            out = self._run(pipe, traits, kwargs, spec.denoising_steps, on_step)
        if self.info.kind is Kind.VIDEO:
            return [to_images(np.asarray(clip)) for clip in np.asarray(out.frames)]
        return [[image] for image in to_images(np.asarray(out.images))]

    def _arguments(
        self, traits: CallTraits, spec: BatchSpec, slots: Sequence[Slot], pictures: Sequence[Image.Image]
    ) -> dict[str, Any]:
        # CPU generators give the same noise on every device, so a seed reproduces anywhere.
        kwargs: dict[str, Any] = {
            "num_inference_steps": spec.steps,
            "generator": [torch.Generator("cpu").manual_seed(slot.seed) for slot in slots],
            "output_type": "np",
        }
        if self.family.prompt:
            kwargs["prompt"] = [slot.prompt for slot in slots]
        if traits.negative != "none" and any(slot.negative for slot in slots):
            kwargs["negative_prompt"] = [slot.negative for slot in slots]
        if traits.negative == "true_cfg" and spec.true_cfg:
            kwargs["true_cfg_scale"] = self.info.true_cfg
        if traits.guidance:
            kwargs["guidance_scale"] = self.info.guidance
        if traits.takes_size:
            kwargs["width"], kwargs["height"] = spec.width, spec.height
        if traits.binning:  # sizes come from memebot's own table; the output is exactly that size
            kwargs["use_resolution_binning"] = False
        if traits.clean_caption:  # it rewrites members' prompts, and needs packages nobody installed
            kwargs["clean_caption"] = False
        if self.info.kind is Kind.VIDEO and traits.frames_arg is not None:
            kwargs[traits.frames_arg] = spec.frames or self.info.frames
        if spec.from_pictures:
            kwargs["image"] = list(pictures) if self.info.kind is Kind.IMAGE else pictures[0]
            if self.info.kind is Kind.IMAGE:
                kwargs["strength"] = spec.strength
        return kwargs

    def _run(
        self, pipe: Any, traits: CallTraits, kwargs: dict[str, Any], planned: int, on_step: StepCallback
    ) -> Any:
        """Call ``pipe`` with progress wired the way it takes it; the count never passes its total."""

        def report(done: int, latents: torch.Tensor) -> None:
            # The pipeline knows what it really runs (a scheduler that adds a step, a remix's share).
            real = getattr(pipe, "_num_timesteps", None)
            total = real if isinstance(real, int) and real > 0 else planned
            on_step(min(done, total), total, latents)

        if traits.callback == "step_end":

            def step_end(pipe: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
                report(i + 1, tensors.get("latents", torch.empty(0)))
                return {}

            return pipe(
                **kwargs, callback_on_step_end=step_end, callback_on_step_end_tensor_inputs=["latents"]
            )
        if traits.callback == "legacy":

            def legacy(i: int, t: Any, latents: torch.Tensor) -> None:
                report(i + 1, latents)

            return pipe(**kwargs, callback=legacy, callback_steps=1)
        with SchedulerHook(pipe.scheduler, report):
            return pipe(**kwargs)

    def img2img(self) -> Any:
        """The image-to-image form on this pipeline's own modules: no second copy of any weight."""
        return self._sibling("remix", self.family.remix)

    def img2video(self) -> Any:
        """The image-to-video form: the pipeline itself, or a sibling on the same modules."""
        if self.family.animate == "self":
            return self.pipe
        return self._sibling("animate", self.family.animate)

    def _sibling(self, what: str, class_name: str) -> Any:
        if what not in self._siblings:
            self._siblings[what] = build_sibling(self.pipe, what, class_name, self.info.name)
        return self._siblings[what]

    def preview(self, latents: torch.Tensor, index: int) -> Image.Image | None:
        """Decode slot ``index`` with the tiny VAE when it fits, else project it; None if neither can."""
        try:
            latent = latent_frame(latents, index, self.family.layout, self._size[1], self._size[0])
            if self.tiny_vae is not None and latent.shape[0] == self.tiny_vae.config.latent_channels:
                with torch.inference_mode():
                    decoded = self.tiny_vae.decode(latent[None].to(self.tiny_vae.dtype)).sample
                array = ((decoded[0].float().cpu().permute(1, 2, 0) + 1) / 2).numpy()
                return to_images(array)[0]
            return latent_preview(latent, self._size)
        except (ValueError, RuntimeError, IndexError) as error:
            log.debug("no preview for %s: %s", self.info.name, error)
            return None


def build_sibling(pipe: Any, what: str, class_name: str, name: str) -> Any:
    """``pipe``'s image-to-image or image-to-video form on the same modules; Unsupported if it has none."""
    import diffusers

    word = "remix pictures" if what == "remix" else "animate pictures"
    try:
        if class_name:
            # Components passed by name: a swapped-in module (a tiny autoencoder as the VAE) is kept
            # even where its class is not the one the sibling's signature names.
            components = {key: value for key, value in pipe.components.items() if value is not None}
            sibling = getattr(diffusers, class_name).from_pipe(pipe, **components)
        elif what == "remix":
            sibling = diffusers.AutoPipelineForImage2Image.from_pipe(pipe)
        else:
            raise Unsupported(f"{name} can't {word}")
    except (ValueError, AttributeError, TypeError) as error:
        raise Unsupported(f"{name} can't {word} ({error})") from error
    sibling.set_progress_bar_config(disable=True)
    return sibling
