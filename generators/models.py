"""The models a bot serves, as plain values: what each is, which is the default, and how each is doing.

Both sides read these: the bot to check a request and show ``/info``, the worker to plan batches. This
module imports nothing heavy, so a bot whose models run in ``memebot worker`` processes needs no torch.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from generators.errors import BadRequest
from generators.requests import GenerationRequest, Kind


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a model is and the defaults requests fall back to."""

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
        shown = name if len(name) <= 24 else name[:23] + "…"
        raise BadRequest(
            f"there is no model '{shown}' here: {hint}the models are {', '.join(self.names)}", flag="--model"
        )

    def resolve(self, request: GenerationRequest) -> GenerationRequest:
        """The request with its model filled in and its kind made to match (a clip model makes clips)."""
        if request.model is not None:
            model = self.check_name(request.model)
            if request.kind is Kind.VIDEO and model.kind is not Kind.VIDEO:
                raise BadRequest(
                    f"{model.name} is an image model, so --video can't be used with it"
                    + _other(self.of_kind(Kind.VIDEO), "clip"),
                    flag="--video",
                )
        else:
            model = self._default(request.kind)
        if model.kind is Kind.VIDEO and request.kind is Kind.IMAGE:
            request = dataclasses.replace(request, kind=Kind.VIDEO, n=1)
        if request.steps is not None and request.steps > model.max_steps:
            raise BadRequest(f"--steps must be at most {model.max_steps} for {model.name}", flag="--steps")
        return dataclasses.replace(request, model=model.name)

    def _default(self, kind: Kind) -> ModelInfo:
        name = self.image if kind is Kind.IMAGE else self.video
        if name is None and kind is Kind.IMAGE and self.video is not None:
            name = self.video  # a bot that only makes clips turns every request into one
        if name is None:
            raise BadRequest("this bot has no clip model, so --video is not available here", flag="--video")
        return self.get(name)


def _other(models: Iterable[ModelInfo], what: str) -> str:
    names = [model.name for model in models]
    return f" (the {what} models are {', '.join(names)})" if names else ""
