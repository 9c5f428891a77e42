"""Frozen values that travel between the adapters, the queue, the worker and the store."""

from __future__ import annotations

import enum
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from generators.plan import Plan


def new_job_id() -> str:
    """An unguessable id: it names the job everywhere, and its result files on disk and on the web."""
    return secrets.token_urlsafe(12)


class Kind(enum.StrEnum):
    """What a request asks for."""

    IMAGE = "image"
    VIDEO = "video"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a remix starts: the SHA-256 (hex) of the member's picture, the job it came from, if any,
    and its size (a remix keeps the picture's shape unless ``--ar`` says otherwise).

    Only this travels with the request; the picture itself waits in the source folder
    (``generators.sources``), so a job, its metadata and its page name the picture without holding it.
    """

    digest: str
    job: str = ""
    width: int = 0
    height: int = 0


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One user's command, ready for the worker.

    ``seed``, ``steps`` and ``model`` may be ``None`` (random seed, the model's default step count, the
    default model for the kind); the job service fills the seed and the model in before the job is
    stored, so every stored request can be reproduced. A remix starts from ``source`` at ``strength``
    (how much of the picture is redrawn: 1 keeps nothing of it).
    """

    prompt: str
    negative: str = ""
    seed: int | None = None
    aspect: tuple[int, int] = (1, 1)
    n: int = 1
    steps: int | None = None
    top: str = ""
    bottom: str = ""
    kind: Kind = Kind.IMAGE
    model: str | None = None
    source: Source | None = None
    strength: float | None = None

    @property
    def remix(self) -> bool:
        """Whether this request starts from a picture."""
        return self.source is not None

    @property
    def picture(self) -> str:
        """The digest of the picture a remix starts from ("" for a request drawn from noise)."""
        return self.source.digest if self.source is not None else ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`from_dict`)."""
        data = asdict(self)
        data["aspect"] = list(self.aspect)
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationRequest:
        """Rebuild a request written by :meth:`to_dict`."""
        values = dict(data)
        values["aspect"] = tuple(values.get("aspect", (1, 1)))
        values["kind"] = Kind(values.get("kind", Kind.IMAGE))
        if values.get("source") is not None:
            values["source"] = Source(**values["source"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Job:
    """A request on its way through the queue: who asked, and how large its result may be."""

    id: str
    owner: str
    request: GenerationRequest
    budget_bytes: int = 10 * 1024 * 1024
    #: How it runs, decided when it was accepted (``generators.plan``); None: the worker plans it.
    plan: Plan | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`from_dict`)."""
        data: dict[str, Any] = {
            "id": self.id,
            "owner": self.owner,
            "request": self.request.to_dict(),
            "budget_bytes": self.budget_bytes,
        }
        if self.plan is not None:
            data["plan"] = self.plan.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """Rebuild a job written by :meth:`to_dict`."""
        plan = data.get("plan")
        return cls(
            id=data["id"],
            owner=data["owner"],
            request=GenerationRequest.from_dict(data["request"]),
            budget_bytes=int(data["budget_bytes"]),
            plan=Plan.from_dict(plan) if isinstance(plan, dict) else None,
        )


@dataclass(frozen=True, slots=True)
class MediaFile:
    """One rendered file of a result."""

    path: Path
    mime: str
    size: int


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """What a finished job produced: the primary file first (grid or clip), then any extras."""

    job_id: str
    files: tuple[MediaFile, ...]
    seeds: tuple[int, ...]
    width: int
    height: int
    elapsed_s: float
    #: Images (grid tiles; 0 for a clip) the image classifier found explicit, and the labels it saw.
    nsfw: tuple[int, ...] = ()
    nsfw_labels: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        """Whether the classifier flagged any image of this result: it is age-restricted from then on."""
        return bool(self.nsfw)

    @property
    def primary(self) -> MediaFile:
        """The file to post: the grid or the clip."""
        return self.files[0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`from_dict`)."""
        return {
            "job_id": self.job_id,
            "files": [{"path": str(f.path), "mime": f.mime, "size": f.size} for f in self.files],
            "seeds": list(self.seeds),
            "width": self.width,
            "height": self.height,
            "elapsed_s": self.elapsed_s,
            "nsfw": list(self.nsfw),
            "nsfw_labels": list(self.nsfw_labels),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationResult:
        """Rebuild a result written by :meth:`to_dict`."""
        return cls(
            job_id=data["job_id"],
            files=tuple(MediaFile(Path(f["path"]), f["mime"], int(f["size"])) for f in data["files"]),
            seeds=tuple(int(s) for s in data["seeds"]),
            width=int(data["width"]),
            height=int(data["height"]),
            elapsed_s=float(data["elapsed_s"]),
            nsfw=tuple(int(i) for i in data.get("nsfw", ())),
            nsfw_labels=tuple(str(label) for label in data.get("nsfw_labels", ())),
        )


@dataclass(frozen=True, slots=True)
class Slot:
    """One image (or clip) of a batch: its own prompt, its own seeded generator, and its picture's digest
    when it is a remix."""

    prompt: str
    negative: str
    seed: int
    source: str = ""


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """What every slot of one pipeline call shares (a job's ``generators.plan.Plan``, minus the job).

    A remix call (``strength`` set) starts every slot from its own picture and runs only the last
    ``denoising_steps`` of the ``steps`` scheduled, as diffusers' image-to-image pipelines do; an
    animation call (``picture`` on a clip model) starts each clip from its picture as the first frame.
    ``denoising``: the steps the pipeline really runs, when the plan counted them (0: all of
    ``steps``, or ``int(steps × strength)`` for a remix). ``true_cfg``: the call runs true
    classifier-free guidance for the negative prompts. ``frames``: a clip's length (0 for images).
    """

    width: int
    height: int
    steps: int
    strength: float | None = None
    denoising: int = 0
    true_cfg: bool = False
    frames: int = 0
    picture: bool = False

    @property
    def from_pictures(self) -> bool:
        """Whether the call starts from pictures: an animation, or a remix (which a strength implies)."""
        return self.picture or self.strength is not None

    @property
    def denoising_steps(self) -> int:
        """The steps the pipeline runs: the plan's count, else all of them, or ``int(steps × strength)``."""
        if self.denoising:
            return self.denoising
        return self.steps if self.strength is None else int(self.steps * self.strength)


# Progress events: small values an adapter turns into message edits at a bounded rate.


@dataclass(frozen=True, slots=True)
class Queued:
    """Waiting: ``position`` jobs run before this one (0 = next); ``eta_s`` seconds until it starts."""

    position: int
    eta_s: float | None


@dataclass(frozen=True, slots=True)
class Started:
    """The worker took the job; ``batch_size`` images run in the same pipeline call."""

    batch_size: int


@dataclass(frozen=True, slots=True)
class Step:
    """Denoising step ``i`` of ``n`` is done, in call ``part`` of ``parts`` (a batch too big for one)."""

    i: int
    n: int
    part: int = 1
    parts: int = 1


@dataclass(frozen=True, slots=True)
class Phase:
    """Work outside the denoising steps, which can take longer than the steps at real size.

    ``name`` is ``loading`` (the job's model; ``detail`` names it and its size), ``decoding`` (the
    VAE turns the last latents into pixels) or ``encoding`` (``detail``: the grid or the clip).
    """

    name: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Preview:
    """A low-cost PNG of the current latents."""

    png: bytes = field(repr=False)
    step: int


@dataclass(frozen=True, slots=True)
class Finished:
    """The job is done and its files are on disk."""

    result: GenerationResult


@dataclass(frozen=True, slots=True)
class Failed:
    """The job failed; ``reason`` is safe to show its owner; ``model_load``: its model could not load."""

    reason: str
    model_load: bool = False


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The job was cancelled before it finished."""


Progress: TypeAlias = Queued | Started | Step | Phase | Preview | Finished | Failed | Cancelled
TERMINAL = (Finished, Failed, Cancelled)
