"""A finished job's pixels → judged → captioned grid or clip → a file under the results folder.

Judging happens here, on the worker's encoder thread, so it never blocks an event loop and covers every
result, from the in-process worker and from Redis workers alike.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image

from generators import render
from generators.config import RenderConfig
from generators.requests import BatchSpec, GenerationResult, Job, Kind, MediaFile
from generators.safety.classifier import Classifier
from generators.safety.verdict import Verdict

log = logging.getLogger(__name__)


def render_job(
    job: Job,
    outputs: Sequence[Sequence[Image.Image]],
    *,
    spec: BatchSpec,
    seeds: Sequence[int],
    metadata: Mapping[str, str],
    folder: Path,
    config: RenderConfig,
    fps: int,
    elapsed: float,
    classifier: Classifier | None = None,
) -> GenerationResult:
    """Render one job (one frame per output for images, all frames of one output for a clip) to disk,
    judged by ``classifier`` when there is one (each image of a grid, sampled frames of a clip)."""
    request = job.request
    verdict = judge_job(job, outputs, classifier)
    meta = flag_metadata(metadata, verdict, judged=classifier is not None) if config.embed_metadata else None
    if request.kind is Kind.VIDEO:
        frames = render.caption_frames(outputs[0], top=request.top, bottom=request.bottom)
        encoded = render.encode_clip(
            frames, fps=fps, budget_bytes=job.budget_bytes, formats=config.clip_formats, metadata=meta
        )
        stem = "clip"
    else:
        # Tiles share a size and a caption: caption_frames lays the text out once for all of them.
        tiles = render.caption_frames(
            [frames[0] for frames in outputs], top=request.top, bottom=request.bottom
        )
        grid = render.make_grid(tiles, numbered=config.number_tiles)
        encoded = render.encode_image(grid, budget_bytes=job.budget_bytes, metadata=meta)
        stem = "grid"
    path = write_result(folder, job.id, f"{stem}.{encoded.ext}", encoded.data)
    return GenerationResult(
        job_id=job.id,
        files=(MediaFile(path, encoded.mime, len(encoded.data)),),
        seeds=tuple(seeds),
        width=spec.width,
        height=spec.height,
        elapsed_s=round(elapsed, 3),
        nsfw=verdict.flagged,
        nsfw_labels=verdict.labels,
    )


def judge_job(job: Job, outputs: Sequence[Sequence[Image.Image]], classifier: Classifier | None) -> Verdict:
    """The classifier's verdict on a job's pictures (none without a classifier); a flag is logged."""
    if classifier is None:
        return Verdict()
    if job.request.kind is Kind.VIDEO:
        verdict = classifier.judge_clip(outputs[0])
    else:
        verdict = classifier.judge_images([frames[0] for frames in outputs])
    if verdict:
        labels = ", ".join(verdict.labels)
        log.info("job %s flagged by the image classifier: %s", job.id, labels, extra={"job_id": job.id})
    return verdict


def flag_metadata(metadata: Mapping[str, str], verdict: Verdict, *, judged: bool) -> Mapping[str, str]:
    """The file's metadata with the classifier's verdict (``nsfw``: flagged images, or ``none``)."""
    if not judged:
        return metadata
    flagged = ",".join(str(i) for i in verdict.flagged) or "none"
    return {**metadata, "nsfw": flagged, "nsfw_labels": ",".join(verdict.labels)}


def write_result(folder: Path, job_id: str, name: str, data: bytes) -> Path:
    """Write ``data`` as ``folder/job_id/name`` atomically (see :func:`write_atomic`)."""
    return write_atomic(folder / job_id / name, data)


def write_atomic(target: Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` so that a reader never sees half a file, even with two writers of
    the same file at once (each writes its own temporary file, and the last rename wins)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as partial:
        partial.write(data)
    Path(partial.name).replace(target)
    return target
