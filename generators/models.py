"""The models a bot serves, as plain values: what each is, which is the default, and how each is doing.

Both sides read these: the bot to check a request and show ``/info``, the worker to plan batches. This
module imports nothing heavy, so a bot whose models run in ``memebot worker`` processes needs no torch.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from generators.config import LimitsConfig
from generators.errors import BadRequest
from generators.grammar import NO_CLIP_REMIX, min_steps, size_for
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

    def steps_for(self, request: GenerationRequest) -> int:
        """The steps ``request`` schedules: its own, else this model's default, raised for a remix
        until at least one step runs at its strength (see ``grammar.min_steps``)."""
        if request.steps is not None:
            return request.steps
        if request.strength is not None:
            return max(self.steps, min_steps(request.strength))
        return self.steps


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
        if request.remix and model.kind is Kind.VIDEO:
            raise BadRequest(
                f"{NO_CLIP_REMIX} ({model.name} makes clips)" + _other(self.of_kind(Kind.IMAGE), "image")
            )
        if model.kind is Kind.VIDEO and request.kind is Kind.IMAGE:
            request = dataclasses.replace(request, kind=Kind.VIDEO, n=1)
        if request.steps is not None and request.steps > model.max_steps:
            raise BadRequest(f"--steps must be at most {model.max_steps} for {model.name}", flag="--steps")
        if (needed := model.steps_for(request)) > model.max_steps:  # a remix's raised default
            raise BadRequest(
                f"--strength {request.strength:g} needs {needed} steps on {model.name}, which allows "
                f"{model.max_steps}: use a higher --strength",
                flag="--strength",
            )
        _check_work(request, model, max_side)
        return dataclasses.replace(request, model=model.name)

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
    """How much work ``request`` asks of ``model``, in megapixel-steps (see ModelInfo.max_work)."""
    width, height = size_for(request.aspect, model.size, max_side)
    images = model.frames if request.kind is Kind.VIDEO else request.n
    return images * model.steps_for(request) * width * height / MEGAPIXEL


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


def _other(models: Iterable[ModelInfo], what: str) -> str:
    names = [model.name for model in models]
    return f" (the {what} models are {', '.join(names)})" if names else ""
