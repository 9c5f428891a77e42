"""The one reply an item gets: counted in the ledger before each try, its id written once it landed.

When a try may have landed (an earlier run stopped, an answer got lost), the bot first reads the
comment's replies on Reddit and adopts its own reply if it is there, so a reply is never posted twice;
failures that can pass (429, 5xx, ``RATELIMIT``, lost connections) are retried until it lands.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import asyncpraw
from asyncpraw.models import Comment

from bot.reddit._ledger import Entry, Ledger, State
from bot.reddit._retry import Throttle, judge
from bot.settings import RedditConfig
from generators.tasks import TaskSupervisor

log = logging.getLogger(__name__)


class Replier:
    """Posts replies exactly once."""

    def __init__(
        self,
        reddit: asyncpraw.Reddit,
        ledger: Ledger,
        throttle: Throttle,
        config: RedditConfig,
        *,
        username: str,
        tasks: TaskSupervisor,
    ) -> None:
        self.reddit = reddit
        self.ledger = ledger
        self.throttle = throttle
        self.config = config
        self.username = username
        self.tasks = tasks

    async def send(self, fullname: str, entry: Entry, text: str) -> Entry:
        """Reply ``text`` unless a reply is known or found; the entry ends REPLIED or UNDELIVERABLE."""
        failures = 0
        while entry.state not in (State.REPLIED, State.UNDELIVERABLE):
            try:
                entry = await self._try(fullname, entry, text)
            except Exception as error:
                failures += 1
                verdict = judge(error, failures, self.config)
                if verdict is None:
                    raise
                if verdict.wait_s is None:
                    log.warning("cannot reply to %s: %s", fullname, verdict.reason)
                    return await self.ledger.put(
                        fullname, entry.to(State.UNDELIVERABLE, reason=verdict.reason)
                    )
                log.warning(
                    "replying to %s failed (%s); trying again in %.1f s",
                    fullname,
                    verdict.reason,
                    verdict.wait_s,
                )
                if verdict.account:
                    self.throttle.hold(verdict.wait_s)
                else:
                    await asyncio.sleep(verdict.wait_s)
                entry = await self.ledger.get(fullname) or entry
        return entry

    async def _try(self, fullname: str, entry: Entry, text: str) -> Entry:
        await self.throttle.wait()
        if entry.attempts:
            found = await self.find_reply(fullname)
            if found is not None:
                log.info("my reply to %s is already there (%s)", fullname, found)
                return await self.ledger.put(fullname, entry.to(State.REPLIED, reply_id=found))
        entry = await self.ledger.put(fullname, replace(entry, attempts=entry.attempts + 1))
        comment = await self.reddit.comment(fullname.removeprefix("t1_"), fetch=False)
        with self.tasks.finishing():
            reply = await comment.reply(text)
        if reply is None:  # asyncpraw returns None only when Reddit's answer has no comment in it
            raise RuntimeError(f"Reddit took the reply to {fullname} but sent no comment back")
        log.info("replied to %s with %s", fullname, reply.fullname)
        return await self.ledger.put(fullname, entry.to(State.REPLIED, reply_id=reply.fullname))

    async def find_reply(self, fullname: str) -> str | None:
        """The fullname of this account's reply to ``fullname`` on Reddit, if there is one."""
        comment = await self.reddit.comment(fullname.removeprefix("t1_"), fetch=False)
        await comment.refresh()
        for reply in comment.replies.list():
            if isinstance(reply, Comment) and reply.author is not None:
                if str(reply.author.name).lower() == self.username.lower():
                    return str(reply.fullname)
        return None
