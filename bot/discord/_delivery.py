"""One message per job, edited as it moves (at a bounded rate), ending with the grid or clip.

An interaction's token lasts 15 minutes; a job delivered later (a long queue, a restart) is posted as a
plain channel message that mentions its owner instead. A job that took longer than
``discord.notify_after_s`` but could still be edited in place ends with a short follow-up that
mentions its owner, since an edit notifies nobody. Those two are the only pings the bot sends, and
each allows exactly one user to be mentioned.

A result the image classifier flagged is shown as made in an age-restricted channel or a DM; elsewhere
it follows the server's ``/settings set flagged:`` (else ``safety.flagged_in_safe_channel``): in a grid
with unflagged tiles only the flagged ones are blurred and labelled; a single picture or clip is either
blocked (a notice only the requester sees, where an interaction allows it) or hidden behind a spoiler.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
from PIL import Image

from bot.addresses import DiscordAddress, DiscordInteraction, as_discord
from bot.discord._animate import animators
from bot.discord._buttons import cancel_view, result_view
from bot.discord._settings import Flagged, load_flagged
from bot.discord._text import DISCORD_LIMIT, progress_text, result_text
from bot.jobs import JobService
from bot.settings import DiscordConfig
from bot.store import JobRecord, JobStatus
from generators import render
from generators.requests import TERMINAL, Cancelled, Failed, GenerationResult, Kind, Preview, Progress
from generators.tasks import TaskSupervisor
from generators.text import clip

log = logging.getLogger(__name__)

PLATFORM = "discord"
TOKEN_LIFETIME_S = 15 * 60 - 30  # a margin for clocks and the request itself
FLAGGED_LABEL = "hidden: flagged"
WITHHELD = (
    "🚫 The image check flagged this result, so it is not shown in this channel; "
    "ask in an age-restricted channel or in DMs."
)


class Undeliverable(Exception):
    """A result has nowhere to go (the channel is gone, or not a text channel)."""


@dataclass
class _Tracked:
    """The newest event of a job not yet shown, and the task showing them."""

    latest: Progress | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    preview: Preview | None = None


class Delivery:
    """Turns a job's events into edits of its message, and its result into the final post."""

    def __init__(
        self,
        client: discord.Client,
        service: JobService,
        config: DiscordConfig,
        *,
        flagged_default: Flagged = "block",
    ) -> None:
        self.client = client
        self.service = service
        self.config = config
        #: What a flagged result does in a safe channel of a server that chose nothing.
        self.flagged_default: Flagged = flagged_default
        self._tracked: dict[str, _Tracked] = {}
        self._tasks = TaskSupervisor("discord-job")

    def on_event(self, job_id: str, event: Progress) -> None:
        """The job service's handler for Discord jobs: remember the event, wake the job's task."""
        if self._tasks.closed:
            return  # stopping: the store has the job's state, and the next start delivers it
        tracked = self._tracked.get(job_id)
        if tracked is None:
            tracked = self._tracked[job_id] = _Tracked()
            self._tasks.spawn(job_id, self._follow(job_id, tracked))
        tracked.latest = event
        if isinstance(event, Preview):
            tracked.preview = event  # kept until shown, even if steps overtake it
        tracked.changed.set()

    async def resume(self) -> None:
        """After a restart: deliver what finished while nobody was listening."""
        for record in await self.service.store.undelivered():
            if record.platform == PLATFORM and record.id not in self._tracked:
                await self._deliver(record)

    async def close(self, grace: float = 10.0) -> None:
        """Let final posts in flight finish (a post without its DELIVERED mark would be repeated
        after a restart); stop following the rest, whose state is in the store for the next start."""
        await self._tasks.close(grace)

    async def _follow(self, job_id: str, tracked: _Tracked) -> None:
        await self.client.wait_until_ready()
        try:
            while True:
                await tracked.changed.wait()
                tracked.changed.clear()
                event = tracked.latest
                if event is None:
                    continue
                if isinstance(event, TERMINAL):
                    with self._tasks.finishing():
                        record = await self.service.store.get(job_id)
                        if record is not None:
                            await self._deliver(record)
                    return
                preview, tracked.preview = tracked.preview, None
                await self._show_progress(job_id, event, preview)
                # Discord allows about 5 edits per 5 s per message; a terminal event does not wait.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._terminal_arrives(tracked), self.config.edit_interval_s)
        except Exception:
            log.exception("delivering job %s failed", job_id, extra={"job_id": job_id})
        finally:
            self._tracked.pop(job_id, None)

    async def _terminal_arrives(self, tracked: _Tracked) -> None:
        while not isinstance(tracked.latest, TERMINAL):
            await tracked.changed.wait()
            if not isinstance(tracked.latest, TERMINAL):
                tracked.changed.clear()

    async def _show_progress(self, job_id: str, event: Progress, preview: Preview | None) -> None:
        record = await self.service.store.get(job_id)
        if record is None or not _editable(address := as_discord(record.reply_to)):
            return  # past the token's life only the final result is posted
        message: dict[str, Any] = {
            "content": progress_text(event, record.job.request),
            "view": cancel_view(job_id),
        }
        if preview is not None:  # otherwise the last preview stays attached
            message["attachments"] = [discord.File(io.BytesIO(preview.png), filename="preview.png")]
        with contextlib.suppress(discord.HTTPException):
            await self._edit(address, **message)

    async def _deliver(self, record: JobRecord) -> None:
        """Post the final state once: the grid or clip with its buttons, or why there is none."""
        try:
            message, pinged = await self._post_final(record)
        except (discord.HTTPException, Undeliverable) as error:
            log.warning("job %s could not be delivered: %s", record.id, error, extra={"job_id": record.id})
            await self.service.mark_undeliverable(record.id, str(error))
            return
        # False when another process delivered it first: nothing more to do either way.
        await self.service.mark_delivered(record.id, str(message.id))
        if not pinged and self._waited_long(record):
            with contextlib.suppress(discord.HTTPException):
                await self._notify(record)

    def _waited_long(self, record: JobRecord) -> bool:
        """Whether the requester has likely stopped watching (a cancel they asked for needs no ping)."""
        waited = time.time() - float(record.reply_to.get("created", record.created_at))
        return record.status is not JobStatus.CANCELLED and waited > self.config.notify_after_s

    async def _notify(self, record: JobRecord) -> None:
        """A short follow-up under the job's message that pings its requester, and only them."""
        reply_to = as_discord(record.reply_to)
        user_id = int(reply_to["user_id"])
        what = "is ready" if record.status is JobStatus.DONE else "has ended"
        content = f"<@{user_id}> your job {what}: {_jump_url(reply_to)}"
        only_them = discord.AllowedMentions(users=[discord.Object(user_id)], replied_user=False)
        if reply_to["kind"] == "message":
            channel = self.client.get_partial_messageable(int(reply_to["channel_id"]))
            reference = channel.get_partial_message(int(reply_to["message_id"]))
            await channel.send(content, reference=reference, allowed_mentions=only_them)
            return
        await self._webhook(reply_to).send(content, allowed_mentions=only_them)

    async def _post_final(self, record: JobRecord) -> tuple[discord.Message, bool]:
        """The final message, and whether it pinged the requester (a new post does, an edit does not)."""
        reply_to = as_discord(record.reply_to)
        request = record.job.request
        if record.status is not JobStatus.DONE or record.result is None:
            content = progress_text(_terminal_event(record), request)
            return await self._edit_or_post(reply_to, content=content, attachments=[], view=None)
        result = record.result
        file = await self._flagged_file(record, result, reply_to)
        if file is None:
            return await self._withhold(reply_to)
        content = result_text(
            request,
            seed=result.seeds[0],
            job_id=record.id,
            user_id=int(reply_to["user_id"]),
            command=self.service.command_line(request),
        )
        images = 0 if request.kind.value == "video" else len(result.seeds)
        view = result_view(record.id, images, animate=bool(animators(self.service.catalog)))
        return await self._edit_or_post(reply_to, content=content, attachments=[file], view=view)

    async def _flagged_file(
        self, record: JobRecord, result: GenerationResult, reply_to: DiscordAddress
    ) -> discord.File | None:
        """The file to post: as it is, its flagged tiles hidden, behind a spoiler, or None: withheld."""
        spoiler = reply_to.get("spoiler", False)
        # Shown as it is where an age-restricted prompt could be: an age-restricted channel, or a DM.
        if not result.flagged or reply_to.get("age_restricted", False) or reply_to.get("guild_id") is None:
            return await result_file(result.primary.path, spoiler=spoiler)
        tiles = len(result.seeds)
        if record.job.request.kind is not Kind.VIDEO and tiles > len(set(result.nsfw)):
            budget = record.job.budget_bytes
            encoded = await asyncio.to_thread(hide_flagged, result.primary.path, tiles, result.nsfw, budget)
            name = f"{result.primary.path.stem}.{encoded.ext}"
            return discord.File(io.BytesIO(encoded.data), filename=name, spoiler=spoiler)
        guild_id = reply_to.get("guild_id")
        choice = await load_flagged(self.service.store, None if guild_id is None else int(guild_id))
        if (choice or self.flagged_default) == "block":
            return None
        return await result_file(result.primary.path, spoiler=True)

    async def _withhold(self, reply_to: DiscordAddress) -> tuple[discord.Message, bool]:
        """Tell only the requester that their result is not shown here, and leave nothing else behind.

        A live interaction gets an ephemeral follow-up and its public message is deleted; otherwise (a
        meme-channel reply, an expired token) the job's message becomes the one-line notice. Either way
        the requester has been told: no later ping is needed (True)."""
        if reply_to["kind"] == "interaction" and _editable(reply_to):
            followup = discord.Webhook.from_state(
                {"id": reply_to["application_id"], "type": 3, "token": reply_to.get("token", "")},
                self.client._connection,
            )
            notice = await followup.send(WITHHELD, ephemeral=True, wait=True)
            with contextlib.suppress(discord.NotFound):
                await followup.delete_message(int(reply_to["message_id"]))
            return notice, True
        message, _ = await self._edit_or_post(reply_to, content=WITHHELD, attachments=[], view=None)
        return message, True

    async def _edit_or_post(self, reply_to: DiscordAddress, **message: Any) -> tuple[discord.Message, bool]:
        if _editable(reply_to):
            try:
                return await self._edit(reply_to, **message), False
            except discord.NotFound:
                pass  # the message was deleted or the token died early: post anew
        channel = await self._channel(int(reply_to["channel_id"]))
        user_id = int(reply_to["user_id"])
        files = message.pop("attachments")
        view = message.pop("view")
        sent: discord.Message = await channel.send(
            clip(f"<@{user_id}> {message['content']}", DISCORD_LIMIT),
            files=files,
            view=view or discord.utils.MISSING,
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(user_id)]),
        )
        return sent, True

    async def _edit(self, reply_to: DiscordAddress, **message: Any) -> discord.Message:
        message_id = int(reply_to["message_id"])
        if reply_to["kind"] == "message":
            channel = self.client.get_partial_messageable(int(reply_to["channel_id"]))
            return await channel.get_partial_message(message_id).edit(**message)
        return await self._webhook(reply_to).edit_message(message_id, **message)

    def _webhook(self, reply_to: DiscordInteraction) -> discord.Webhook:
        """The interaction's follow-up webhook (its token may be gone: then Discord answers 401)."""
        token = reply_to.get("token", "")
        return discord.Webhook.partial(int(reply_to["application_id"]), token, client=self.client)

    async def _channel(self, channel_id: int) -> discord.abc.Messageable:
        channel = self.client.get_channel(channel_id) or await self.client.fetch_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise Undeliverable(f"channel {channel_id} does not take messages")
        return channel


async def result_file(path: Path, *, spoiler: bool = False) -> discord.File:
    """A stored result as an upload, read off the event loop (no file handle left to close)."""
    data = await asyncio.to_thread(path.read_bytes)
    return discord.File(io.BytesIO(data), filename=path.name, spoiler=spoiler)


def hide_flagged(path: Path, tiles: int, flagged: tuple[int, ...], budget_bytes: int) -> render.Encoded:
    """A stored grid of ``tiles`` pictures with the ``flagged`` ones blurred and labelled (blocking)."""
    with Image.open(path) as grid:
        hidden = render.hide_tiles(grid, tiles, flagged, label=FLAGGED_LABEL)
    return render.encode_image(hidden, budget_bytes=budget_bytes)


def _editable(reply_to: DiscordAddress) -> bool:
    """Whether the job's message can still be edited: the bot's own reply, or a live interaction token."""
    if reply_to["kind"] == "message":
        return True
    return time.time() - float(reply_to.get("created", 0)) < TOKEN_LIFETIME_S


def _jump_url(reply_to: DiscordAddress) -> str:
    """A link to the job's message (``@me`` in DMs)."""
    guild = reply_to.get("guild_id") or "@me"
    return f"https://discord.com/channels/{guild}/{reply_to['channel_id']}/{reply_to['message_id']}"


def _terminal_event(record: JobRecord) -> Progress:
    if record.status is JobStatus.CANCELLED:
        return Cancelled()
    return Failed(record.error or "the job failed")
