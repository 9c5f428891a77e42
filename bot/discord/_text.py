"""What the bot's messages say (pure functions: easy to test, easy to change)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from generators.models import Catalog, ModelState
from generators.requests import Cancelled, Failed, GenerationRequest, Preview, Progress, Queued, Started, Step
from generators.streams.heartbeat import WorkerStatus

DISCORD_LIMIT = 2000
BAR = 12


def progress_text(event: Progress, request: GenerationRequest, now: float | None = None) -> str:
    """The in-progress message for ``event``."""
    head = f"**{clip(request.prompt, 300)}**"
    match event:
        case Queued(position=position, eta_s=eta):
            ahead = "next in line" if position == 0 else f"{position} ahead of you"
            when = f", starting <t:{int((now or time.time()) + eta)}:R>" if eta else ""
            return f"{head}\n⏳ Queued: {ahead}{when}"
        case Started():
            return f"{head}\n🎨 Generating…"
        case Preview(step=i):
            return f"{head}\n🎨 step {i} (preview below)"
        case Step(i=i, n=n):
            filled = round(BAR * i / n)
            return f"{head}\n🎨 `{'▰' * filled}{'▱' * (BAR - filled)}` step {i}/{n}"
        case Failed(reason=reason):
            return f"{head}\n❌ {reason}"
        case Cancelled():
            return f"{head}\n✖ Cancelled."
    return head


def result_text(request: GenerationRequest, *, seed: int, job_id: str, user_id: int, command: str) -> str:
    """The caption of a finished grid or clip: prompt, model, seed, job id and who asked."""
    model = f"model `{request.model}` · " if request.model else ""
    lines = [
        f"**{clip(request.prompt, 600)}**",
        f"{model}seed `{seed}` · job `{job_id}` · by <@{user_id}>",
        f"`/imagine prompt:{clip(command, 1000)}`",
    ]
    return clip("\n".join(lines), DISCORD_LIMIT)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def workers_line(workers: Sequence[WorkerStatus]) -> str:
    """Who runs the jobs: each worker's name, how busy and how fast (a GPU worker reports its speed)."""
    if not workers:
        return "Workers: none online, so jobs wait until one starts"
    parts = []
    for worker in workers[:10]:
        speed = f", {worker.images_per_s:.2f} images/s" if worker.images_per_s else ""
        parts.append(f"{worker.name} ({worker.busy} running{speed})")
    more = f" and {len(workers) - 10} more" if len(workers) > 10 else ""
    return f"Workers: {len(workers)}: {', '.join(parts)}{more}"


def models_lines(catalog: Catalog, states: Sequence[ModelState]) -> list[str]:
    """One line per model: name, kind, size, steps, whether it is loaded (or why it failed)."""
    by_name = {state.name: state for state in states}
    lines = []
    for model in catalog:
        state = by_name.get(model.name, ModelState(model.name))
        default = [k for k, n in (("images", catalog.image), ("clips", catalog.video)) if n == model.name]
        tags = [f"default for {' and '.join(default)}"] if default else []
        if state.error:
            tags.append(f"failed to load: {clip(state.error, 120)}")
        else:
            tags.append("loaded" if state.loaded else "not loaded")
        if model.note:
            tags.append(model.note)
        shape = f"{model.kind.value}, {model.size} px, {model.steps} steps"
        lines.append(f"Model **{model.name}** ({shape}): {'; '.join(tags)}")
    return lines
