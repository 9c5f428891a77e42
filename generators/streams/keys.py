"""The names of every Redis key, stream and channel memebot uses, all under one prefix."""

from __future__ import annotations

from dataclasses import dataclass

#: The consumer group every owner stream has: all workers read through it.
GROUP = "workers"
#: The consumer group of a bot's events stream (one reader: the bot that queued those jobs).
BOT_GROUP = "bot"


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under ``prefix``."""

    prefix: str

    def queue(self, model: str, owner: str) -> str:
        """The stream of one owner's waiting and running jobs for one model."""
        return f"{self.queue_root}{model}:{owner}"

    @property
    def queue_root(self) -> str:
        """What :meth:`queue` puts before ``model:owner`` (the Lua scripts build stream names with it).

        Model names hold no ':' (see ``ModelsConfig``), so the first one after the root ends the model.
        """
        return f"{self.prefix}:q:"

    def owners(self, model: str) -> str:
        """Sorted set of owners with jobs of ``model`` waiting; the score is their turn (lowest goes next)."""
        return f"{self.owners_root}{model}"

    @property
    def owners_root(self) -> str:
        """What :meth:`owners` puts before the model."""
        return f"{self.prefix}:owners:"

    @property
    def turn(self) -> str:
        """Counter that hands out turns, shared by every model (so turns compare across models)."""
        return f"{self.prefix}:turn"

    @property
    def waiting(self) -> str:
        """Hash: owner → how many of their jobs wait, of every model (the per-user cap counts them all)."""
        return f"{self.prefix}:waiting"

    @property
    def total(self) -> str:
        """How many jobs wait in all, of every model."""
        return f"{self.prefix}:total"

    def streams(self, model: str) -> str:
        """Set of ``model``'s owner streams that hold entries (where a dead worker's jobs may be pending)."""
        return f"{self.streams_root}{model}"

    @property
    def streams_root(self) -> str:
        """What :meth:`streams` puts before the model."""
        return f"{self.prefix}:streams:"

    def job(self, job_id: str) -> str:
        """Hash of one queued or running job: its stream entry, state, worker and reply stream."""
        return f"{self.prefix}:job:{job_id}"

    @property
    def job_prefix(self) -> str:
        """What :meth:`job` puts before the id."""
        return f"{self.prefix}:job:"

    def cancel(self, job_id: str) -> str:
        """Flag: cancelling this running job was asked for."""
        return f"{self.prefix}:cancel:{job_id}"

    @property
    def cancel_prefix(self) -> str:
        """What :meth:`cancel` puts before the id."""
        return f"{self.prefix}:cancel:"

    @property
    def dead(self) -> str:
        """Dead-letter stream: jobs that were delivered too often without finishing."""
        return f"{self.prefix}:dead"

    def events(self, instance: str) -> str:
        """The stream a bot instance reads its jobs' progress from."""
        return f"{self.prefix}:events:{instance}"

    def result(self, job_id: str, name: str) -> str:
        """One result file's bytes, until the bot has written it to its own disk."""
        return f"{self.prefix}:result:{job_id}:{name}"

    def source(self, digest: str) -> str:
        """A remix's picture (PNG bytes) by its digest, for the worker that takes the job."""
        return f"{self.prefix}:source:{digest}"

    @property
    def sources(self) -> str:
        """Hash: picture digest → how many waiting or running jobs remix it (its key goes at 0)."""
        return f"{self.prefix}:sources"

    def worker(self, name: str) -> str:
        """A worker's heartbeat hash (expires when the worker stops announcing itself)."""
        return f"{self.prefix}:worker:{name}"

    @property
    def workers(self) -> str:
        """Sorted set of worker names, scored by when their heartbeat expires."""
        return f"{self.prefix}:workers"

    @property
    def wake(self) -> str:
        """Channel: a job of the model in the message was queued (idle workers serving it look again)."""
        return f"{self.prefix}:wake"

    @property
    def cancels(self) -> str:
        """Channel: the id of a running job to stop."""
        return f"{self.prefix}:cancels"
