"""Retention: results, pages and job records are deleted once they are ``store.retention_days`` old.

A periodic sweep deletes every ended job (delivered, undeliverable, failed, cancelled, or done but never
delivered) whose last change is older than that, files first; its page then answers 410 Gone until the
tombstone itself expires. Pictures members sent to remix go once unused for as long. The same sweep
drops Discord interaction tokens from reply addresses once they are past their 15-minute life, so the
store never holds a live credential longer than it is useful.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from bot.jobs import JobService
from bot.settings import Settings, StoreConfig
from bot.store import DELETED
from generators.errors import UserError
from generators.tasks import in_background

log = logging.getLogger(__name__)

#: Discord interaction tokens expire 15 minutes after the interaction.
TOKEN_LIFETIME_S = 15 * 60
_DAY_S = 86400.0
_BATCH = 100


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep removed."""

    jobs: int = 0
    tokens: int = 0
    pictures: int = 0


class Retention:
    """Deletes what is past ``store.retention_days`` through the job service's door."""

    def __init__(
        self, service: JobService, config: StoreConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.service = service
        self.config = config
        self.clock = clock

    async def sweep(self) -> Swept:
        """One pass: expired tokens, then expired jobs (oldest first) and old tombstones."""
        store = self.service.store
        now = self.clock()
        tokens = await store.drop_tokens(before=now - TOKEN_LIFETIME_S)
        jobs = pictures = 0
        if self.config.retention_days > 0:
            cutoff = now - self.config.retention_days * _DAY_S
            await store.kv_prune(DELETED, cutoff)  # a deleted page answers 410 as long as it would have lived
            while batch := await store.expired(cutoff, limit=_BATCH):
                for record in batch:
                    with contextlib.suppress(UserError):  # deleted meanwhile (its owner's 🗑)
                        await self.service.delete(record.id)
                        jobs += 1
            pictures = await asyncio.to_thread(self.service.sources.remove_older_than, cutoff)
        if jobs or tokens or pictures:
            log.info(
                "retention: deleted %d expired jobs and %d remix pictures, dropped %d expired tokens",
                jobs,
                pictures,
                tokens,
            )
        return Swept(jobs, tokens, pictures)

    async def run(self) -> None:
        """Sweep every ``store.cleanup_interval_s`` until cancelled; a failed sweep is tried next time."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("retention sweep failed; next in %.0f s", self.config.cleanup_interval_s)
            await asyncio.sleep(self.config.cleanup_interval_s)


@contextlib.asynccontextmanager
async def running(settings: Settings, service: JobService) -> AsyncIterator[Retention]:
    """Sweep in the background until the block ends."""
    retention = Retention(service, settings.store)
    async with in_background(retention.run(), "memebot-retention"):
        yield retention
