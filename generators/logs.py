"""Which job a log line is about: a context variable that log records pick up.

Code handling one job runs inside ``with job_context(job_id):``; :class:`JobIdFilter` copies the id
onto every record logged there (or keeps one passed as ``extra={"job_id": ...}``), and the formatters
in ``bot.logs`` print it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("memebot_job_id", default=None)


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Log records made inside the block carry ``job_id``."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


class JobIdFilter(logging.Filter):
    """Sets ``record.job_id`` (None when the line is about no job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the job id; never drops a record."""
        if getattr(record, "job_id", None) is None:
            record.job_id = _job_id.get()
        return True
