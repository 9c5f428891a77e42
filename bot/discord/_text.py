"""What the bot's messages say (pure functions: easy to test, easy to change).

Whatever a user typed (prompts, captions, job ids, errors that quote them) goes through :func:`escape`
or :func:`code` before it is put in a message: no markdown of theirs applies, no masked link forms, and
mentions are shown, never parsed. The client also sends ``allowed_mentions`` with nothing allowed,
so even a mention that slipped through pings nobody.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from bot.progress import bar, counted, phase_words, place_words, started_words
from generators.config import LimitsConfig
from generators.grammar import help_text, provenance
from generators.models import Catalog, ModelInfo, ModelState
from generators.requests import (
    Cancelled,
    Failed,
    GenerationRequest,
    Kind,
    Phase,
    Preview,
    Progress,
    Queued,
    Started,
    Step,
)
from generators.streams.heartbeat import WorkerStatus
from generators.text import clip

DISCORD_LIMIT = 2000
BAR = 12
#: Characters that start or end Discord markdown (bold, italics, strike, spoiler, code, masked links).
_MARKDOWN = re.compile(r"([\\*_~|`\[\]()<>#])")
#: What Discord turns into a mention: @everyone, @here, <@user>, <@!user>, <@&role>, <#channel>.
_MENTION = re.compile(r"@(?=everyone|here)|(?<=<)(?=[@#])", re.IGNORECASE)
#: A zero-width space: shown as nothing, but breaks the mention syntax.
_BREAK = "\u200b"


def progress_text(event: Progress, request: GenerationRequest, now: float | None = None) -> str:
    """The in-progress message for ``event``: the words of ``bot.progress``, dressed for Discord."""
    head = prompt_line(request.prompt)
    now = now or time.time()
    match event:
        case Queued(position=position, eta_s=eta):
            when = f", starting <t:{int(now + eta)}:R>" if eta else ""
            return f"{head}\n⏳ Queued: {place_words(position)}{when}"
        case Started(batch_size=size):
            return f"{head}\n🎨 {_sentence(started_words(size))}…"
        case Phase():
            # Discord keeps a relative timestamp current on its own: the phase's elapsed time, live.
            return f"{head}\n⚙️ {_sentence(escape(phase_words(event)))}… (started <t:{int(now)}:R>)"
        case Preview(step=i):
            return f"{head}\n🎨 step {i} (preview below)"
        case Step(i=i, n=n):
            return f"{head}\n🎨 `{bar(i, n, full='▰', empty='▱', width=BAR)}` step {i}/{n}"
        case Failed(reason=reason):
            return f"{head}\n❌ {escape(clip(reason, 500))}"
        case Cancelled():
            return f"{head}\n✖ Cancelled."
    return head


def _sentence(words: str) -> str:
    return words[:1].upper() + words[1:]


def result_text(request: GenerationRequest, *, seed: int, job_id: str, user_id: int, command: str) -> str:
    """The caption of a finished grid or clip: prompt, model, seed, job id, who asked, the command to
    make it again and, for a remix, what it started from (the command alone cannot bring the picture)."""
    model = f"model {code(request.model, 100)} · " if request.model else ""
    lines = [
        prompt_line(request.prompt, 600),
        f"{model}seed `{seed}` · job {code(job_id, 80)} · by <@{user_id}>",
        code(f"/imagine prompt:{command}", 700),
    ]
    if source := provenance(request):
        lines.append(f"🎨 {escape(clip(source, 200))}")
    return clip("\n".join(lines), DISCORD_LIMIT)


def prompt_line(prompt: str, limit: int = 300) -> str:
    """The prompt in bold, as the first line of a job's message."""
    return f"**{escape(clip(prompt, limit))}**"


def error_text(message: str) -> str:
    """A refusal or error, which may quote what the user typed, as one short line."""
    return clip(f"❌ {escape(clip(message, 900))}", DISCORD_LIMIT)


def escape(text: str) -> str:
    """User text as plain text on one line: markdown characters escaped, mentions broken."""
    one_line = " ".join(text.split())
    return _MENTION.sub(_escape_mention, _MARKDOWN.sub(r"\\\1", one_line))


def _escape_mention(match: re.Match[str]) -> str:
    return match.group(0) + _BREAK


def code(text: str, limit: int) -> str:
    """User text clipped to ``limit`` and shown as inline code (a backtick in it cannot close it)."""
    inner = clip(" ".join(text.split()), limit).replace("`", "ˋ")
    return f"`{_MENTION.sub(_escape_mention, inner) or ' '}`"


def workers_line(workers: Sequence[WorkerStatus]) -> str:
    """Who runs the jobs: each worker's name, how busy and how fast (a GPU worker reports its speed)."""
    if not workers:
        return "Workers: none online, so jobs wait until one starts"
    parts = []
    for worker in workers[:10]:
        speed = f", {worker.images_per_s:.2f} images/s" if worker.images_per_s else ""
        parts.append(f"{escape(clip(worker.name, 60))} ({worker.busy} running{speed})")
    more = f" and {len(workers) - 10} more" if len(workers) > 10 else ""
    return f"Workers: {len(workers)}: {', '.join(parts)}{more}"


def models_lines(catalog: Catalog, states: Sequence[ModelState]) -> list[str]:
    """One line per model: name, kind, size, steps, whether it is loaded (or why it failed), and what it
    does with a picture (remix or animate)."""
    by_name = {state.name: state for state in states}
    lines = []
    for model in catalog:
        state = by_name.get(model.name, ModelState(model.name))
        default = [k for k, n in (("images", catalog.image), ("clips", catalog.video)) if n == model.name]
        tags = [f"default for {' and '.join(default)}"] if default else []
        if state.error:
            tags.append(f"failed to load: {escape(clip(state.error, 120))}")
        else:
            tags.append("loaded" if state.loaded else "not loaded")
        if model.note:
            tags.append(model.note)
        tags.append(abilities(model))
        shape = f"{model.kind.value}, {model.size} px, {counted(model.steps, 'step')}"
        lines.append(f"Model **{model.name}** ({shape}): {'; '.join(tags)}")
    return lines


def abilities(model: ModelInfo) -> str:
    """What a model does with a picture, in a few words."""
    if model.kind is Kind.IMAGE:
        return "remixes pictures" if model.remix else "no remixes"
    if model.needs_picture:
        return "only animates pictures"
    return "animates pictures too" if model.animate else "can't animate pictures"


def help_lines(limits: LimitsConfig, catalog: Catalog) -> list[str]:
    """/help: the grammar's flags (the same in /imagine's prompt, meme channels and on Reddit), then
    the models ``--model`` can name (the flags are a fixed text; the list of models is cut to fit)."""
    head = (
        "Use /imagine (or /animate for a clip) with a prompt; flags after the prompt work too. To remix a "
        "picture, give /imagine an image, right-click a message → Apps → Remix with memebot, or press 🎨 "
        "under a result; to animate one, give /animate an image, use Apps → Animate with memebot, or press "
        "🎬."
    )
    flags = f"```\n{help_text(limits).replace('`', 'ˋ')}\n```"
    names = [f"{code(m.name, 60)} ({m.kind.value}, {m.size} px)" for m in catalog]
    models = clip(
        f"Models for --model: {', '.join(names) or 'none'}", DISCORD_LIMIT - len(head) - len(flags) - 2
    )
    return [head, flags, models]
