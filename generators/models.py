"""The models a bot serves, as plain values: what each is, which is the default, and how each is doing.

Both sides read these: the bot to check a request and show ``/info``, the worker to plan batches. This
module imports nothing heavy, so a bot whose models run in ``memebot worker`` processes needs no torch.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from generators.config import LimitsConfig, ModelConfig
from generators.errors import BadRequest
from generators.families import (
    Family,
    Negative,
    StepRule,
    denoising_steps,
    min_steps,
    scheduler_extra_steps,
)
from generators.plan import Plan, size_for
from generators.presets import PRESETS, Preset, family_of, local_folder
from generators.requests import GenerationRequest, Kind
from generators.text import clip

#: The work cap of a model that sets none and is not a preset, in megapixel-steps (see ModelInfo).
DEFAULT_MAX_WORK = 64.0
MEGAPIXEL = 1024 * 1024
_MAX_SIDE: int = LimitsConfig.model_fields["max_side"].default


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a model is and the defaults requests fall back to.

    ``max_work`` caps one job's cost in megapixel-steps: images × steps × width × height / 1024², a
    clip counting its frames as images. Time grows about linearly in each, so it bounds how long a
    job holds the GPU whatever mix of --n, --steps and --ar asks for it.
    """

    name: str
    source: str
    kind: Kind
    steps: int
    max_steps: int
    guidance: float
    size: int
    frames: int
    fps: int
    device: str
    dtype: str
    note: str = ""
    max_work: float = DEFAULT_MAX_WORK
    #: The family (``generators.families``) and what it can honour, known before loading and
    #: confirmed by the loaded pipeline's own call.
    family: str = ""
    negative: Negative = "native"
    remix: bool = True
    animate: bool = False
    prompt: bool = True
    needs_picture: bool = False
    step_rule: StepRule = "floor"
    frames_step: int = 1
    #: Steps the scheduler runs beyond those asked for (PNDM's PLMS form: one).
    extra_steps: int = 0
    true_cfg: float = 4.0
    licence: str = ""

    @property
    def kind_word(self) -> str:
        """ "image" or "clip", as users say it."""
        return "clip" if self.kind is Kind.VIDEO else "image"

    @property
    def takes_picture(self) -> bool:
        """Whether a request may start from a picture: a remix (images) or an animation (clips)."""
        return self.animate if self.kind is Kind.VIDEO else self.remix

    def steps_for(self, request: GenerationRequest) -> int:
        """The steps ``request`` schedules: its own, else this model's default, raised for a remix
        until at least one step runs at its strength (see ``families.min_steps``)."""
        if request.steps is not None:
            return request.steps
        if request.strength is not None:
            return max(self.steps, min_steps(request.strength, self.step_rule))
        return self.steps

    def plan(self, request: GenerationRequest, max_side: int = _MAX_SIDE) -> Plan:
        """How ``request`` runs on this model: size, scheduled and real steps, strength, frames."""
        width, height = size_for(request.aspect, self.size, max_side)
        steps = self.steps_for(request)
        strength = request.strength if request.source is not None else None
        # An animation's picture is its first frame, not a start to denoise from: every step runs.
        ratio = strength if self.kind is Kind.IMAGE else None
        return Plan(
            width=width,
            height=height,
            steps=steps,
            denoising_steps=denoising_steps(steps, ratio, self.step_rule) + self.extra_steps,
            strength=ratio,
            frames=self.frames if self.kind is Kind.VIDEO else 0,
            true_cfg=bool(request.negative) and self.negative == "true_cfg",
            picture=request.source is not None,
        )


@dataclass(frozen=True, slots=True)
class ModelState:
    """How one model is doing in a worker: loaded or not, why it failed, what loading it cost."""

    name: str
    loaded: bool = False
    error: str = ""
    load_s: float | None = None
    memory_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every model this bot serves, by name, and the default one for each kind of request."""

    models: tuple[ModelInfo, ...]
    image: str | None = None
    video: str | None = None

    def __post_init__(self) -> None:
        names = [model.name for model in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique: {names}")
        for kind, default in ((Kind.IMAGE, self.image), (Kind.VIDEO, self.video)):
            if default is not None and self.get(default).kind is not kind:
                raise ValueError(f"the default {kind.value} model {default!r} is not a {kind.value} model")

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self.models)

    def __contains__(self, name: object) -> bool:
        return any(model.name == name for model in self.models)

    @property
    def names(self) -> list[str]:
        """Every model's name, in config order."""
        return [model.name for model in self.models]

    def of_kind(self, kind: Kind) -> list[ModelInfo]:
        """The models that make images, or clips."""
        return [model for model in self.models if model.kind is kind]

    def get(self, name: str) -> ModelInfo:
        """The model called ``name``; KeyError when there is none."""
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(name)

    def check_name(self, name: str) -> ModelInfo:
        """The model called ``name``, or BadRequest listing the models (with a did-you-mean)."""
        if name in self:
            return self.get(name)
        close = difflib.get_close_matches(name.lower(), self.names, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}? " if close else ""
        shown = clip(name, 24)
        raise BadRequest(
            f"there is no model '{shown}' here: {hint}the models are {', '.join(self.names)}", flag="--model"
        )

    def resolve(self, request: GenerationRequest, *, max_side: int = _MAX_SIDE) -> GenerationRequest:
        """The request with its model filled in and its kind made to match (a clip model makes clips).

        Refuses steps past the model's own limit and work past its cap (``max_side``: the limits' largest
        side, which sizes the request as the worker will).
        """
        model = self.model_for(request)
        if model.kind is Kind.VIDEO and request.kind is Kind.IMAGE:
            request = dataclasses.replace(request, kind=Kind.VIDEO, n=1)
        self._check_flags(request, model)
        if request.steps is not None and request.steps > model.max_steps:
            raise BadRequest(f"--steps must be at most {model.max_steps} for {model.name}", flag="--steps")
        if (needed := model.steps_for(request)) > model.max_steps:  # a remix's raised default
            raise BadRequest(
                f"--strength {request.strength:g} needs {needed} steps on {model.name}, which allows "
                f"{model.max_steps}: use a higher --strength",
                flag="--strength",
            )
        _check_remix_steps(request, model)
        _check_work(request, model, max_side)
        return dataclasses.replace(request, model=model.name)

    def _check_flags(self, request: GenerationRequest, model: ModelInfo) -> None:
        """Refuse what ``model`` cannot honour, before anything is queued (never drop it silently)."""
        if request.negative and model.negative == "none":
            raise BadRequest(
                f"{model.name} takes no negative prompt, so --no can't be used with it"
                + _other([m for m in self.of_kind(model.kind) if m.negative != "none"], model.kind_word),
                flag="--no",
            )
        if request.remix and not model.takes_picture:
            can = [m for m in self.of_kind(model.kind) if m.takes_picture]
            what = "animate a picture" if model.kind is Kind.VIDEO else "remix a picture"
            raise BadRequest(
                f"{model.name} can't {what}" + _other(can, f"{model.kind_word} models that can", named=True),
                flag="--video" if model.kind is Kind.VIDEO else "--strength",
            )
        if not request.remix and model.needs_picture:
            raise BadRequest(
                f"{model.name} only animates a picture: send one with the command, or pick another model"
                + _other([m for m in self.of_kind(model.kind) if not m.needs_picture], model.kind_word),
                flag="--model",
            )

    def model_for(self, request: GenerationRequest) -> ModelInfo:
        """The model ``request`` runs on: the one it names, else the default for its kind."""
        if request.model is None:
            return self._default(request.kind)
        model = self.check_name(request.model)
        if request.kind is Kind.VIDEO and model.kind is not Kind.VIDEO:
            raise BadRequest(
                f"{model.name} is an image model, so --video can't be used with it"
                + _other(self.of_kind(Kind.VIDEO), "clip"),
                flag="--video",
            )
        return model

    def _default(self, kind: Kind) -> ModelInfo:
        name = self.image if kind is Kind.IMAGE else self.video
        if name is None and kind is Kind.IMAGE and self.video is not None:
            name = self.video  # a bot that only makes clips turns every request into one
        if name is None:
            raise BadRequest("this bot has no clip model, so --video is not available here", flag="--video")
        return self.get(name)


def work_of(request: GenerationRequest, model: ModelInfo, max_side: int = _MAX_SIDE) -> float:
    """How much work ``request`` asks of ``model``, in megapixel-steps (see ModelInfo.max_work).

    A clip counts its frames as images; true classifier-free guidance (a negative prompt on FLUX.1)
    runs the denoiser twice per step, so it counts twice.
    """
    plan = model.plan(request, max_side)
    images = model.frames if request.kind is Kind.VIDEO else request.n
    passes = 2 if plan.true_cfg else 1
    return passes * images * model.steps_for(request) * plan.width * plan.height / MEGAPIXEL


def _check_remix_steps(request: GenerationRequest, model: ModelInfo) -> None:
    if request.steps is None or request.strength is None or model.kind is Kind.VIDEO:
        return
    if denoising_steps(request.steps, request.strength, model.step_rule) < 1:
        least = min_steps(request.strength, model.step_rule)
        raise BadRequest(
            f"--steps {request.steps} at --strength {request.strength:g} leaves no step to run on "
            f"{model.name} (a remix runs part of its steps): use --steps {least} or more, or a higher "
            "--strength",
            flag="--steps",
        )


def _check_work(request: GenerationRequest, model: ModelInfo, max_side: int) -> None:
    work = work_of(request, model, max_side)
    if work <= model.max_work:
        return
    width, height = size_for(request.aspect, model.size, max_side)
    steps = model.steps_for(request)
    if request.kind is Kind.VIDEO:
        asked, fewer, flag = f"a clip of {model.frames} frames × {steps} steps", "--steps", "--steps"
    else:
        images = "image" if request.n == 1 else "images"
        asked, fewer, flag = f"{request.n} {images} × {steps} steps", "--n or --steps", "--n"
    square = size_for((1, 1), model.size, max_side)
    smaller = ", or --ar 1:1" if width * height > square[0] * square[1] else ""
    raise BadRequest(
        f"this asks for {asked} at {width}×{height} ({work:.3g} megapixel-steps); the limit for "
        f"{model.name} is {model.max_work:g}: use fewer {fewer}{smaller}",
        flag=flag,
    )


def _other(models: Iterable[ModelInfo], what: str, *, named: bool = False) -> str:
    names = [model.name for model in models]
    if not names:
        return ""
    return f" (the {what}: {', '.join(names)})" if named else f" (the {what} models are {', '.join(names)})"


def model_info(
    name: str, config: ModelConfig, preset: Preset, family: Family, *, device: str, dtype: str
) -> ModelInfo:
    """Defaults from the preset (or the family), overridden by the config; ``name`` is what users call it."""
    kind = Kind(config.kind) if config.kind != "auto" else family.kind
    return ModelInfo(
        name=name,
        source=str(config.path or preset.source or config.name),
        kind=kind,
        steps=min(config.steps or preset.steps, config.max_steps or preset.max_steps),
        max_steps=config.max_steps or preset.max_steps,
        guidance=preset.guidance if config.guidance is None else config.guidance,
        size=config.size or preset.size,
        frames=_frames(config.frames or preset.frames, family),
        fps=config.fps if "fps" in config.model_fields_set else preset.fps,
        device=device,
        dtype=dtype,
        note=preset.note,
        max_work=config.max_work or preset.max_work,
        family=family.name,
        negative=family.negative,
        remix=bool(family.remix),
        animate=bool(family.animate),
        prompt=family.prompt,
        needs_picture=family.needs_picture,
        step_rule=family.step_rule,
        frames_step=family.frames_step,
        true_cfg=family.true_cfg,
        licence=preset.licence,
    )


def _frames(frames: int, family: Family) -> int:
    """``frames``, or the nearest count the family's temporal compression takes (9 for 8, say)."""
    return frames if family.valid_frames(frames) else family.nearest_frames(frames)


#: A few-step scheduler (LCM, TCD): more steps would only cost time.
FEW_STEP_SCHEDULERS = ("LCMScheduler", "TCDScheduler")


def preset_for(config: ModelConfig, family: Family) -> Preset:
    """The entry's preset, or defaults from its family for a hub id or folder that is not one."""
    preset = PRESETS.get(config.name)
    if preset is not None:
        return preset
    work = 64.0 if family.kind is Kind.IMAGE else 200.0
    return Preset(
        "custom", "", family.name, family.steps, family.guidance, family.size,
        frames=family.frames, fps=family.fps, max_work=work,
    )  # fmt: skip


def describe_model(config: ModelConfig, name: str | None = None) -> ModelInfo:
    """What ``config`` will load, without loading it: for a bot whose workers run the model elsewhere.

    The family comes from the preset, else the folder's ``model_index.json``; a hub id that is not a
    preset is a generic model of its ``kind`` until a worker loads it.
    """
    family = family_of(config.name, config.kind, config.path)
    info = model_info(
        name or config.name,
        config,
        preset_for(config, family),
        family,
        device="not loaded",
        dtype=config.dtype,
    )
    folder = local_folder(config.name, config.path)
    if folder is not None:
        info = dataclasses.replace(info, extra_steps=scheduler_extra_steps(folder))
    return info
