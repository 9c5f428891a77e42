"""Log output: one line per record, as text or JSON, with the job it is about, and secrets masked.

Masking happens in the formatter, on the finished line (tracebacks included), so no code path can
print a token: the configured secrets, the password in ``queue.redis_url``, and anything shaped like a
Discord token, an interaction webhook token or a bearer token.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import IO, Any
from urllib.parse import unquote

from bot.settings import LoggingConfig, Settings, redis_password
from generators.logs import JobIdFilter

MASK = "***"
_PATTERNS = [
    # Discord bot tokens: base64 user id . timestamp . HMAC.
    (re.compile(r"\b[\w-]{23,28}\.[\w-]{6}\.[\w-]{27,40}\b"), MASK),
    # Interaction and webhook tokens travel in URL paths.
    (re.compile(r"(/webhooks/\d+/)[\w.-]+"), rf"\1{MASK}"),
    (re.compile(r"(?i)\b(bearer\s+)[\w.~+/-]+=*"), rf"\1{MASK}"),
    (re.compile(r"(\w+://[^:/@\s]*:)[^@\s]+(@)"), rf"\1{MASK}\2"),
]


class Redactor:
    """Replaces secrets in text with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is masked whole. Short ones too, whatever they
        # mask besides: a readable log is not worth a printed password.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` with every secret masked."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


def secret_values(settings: Settings) -> list[str]:
    """Every credential the settings hold, as plain text, for the redactor."""
    values = [
        secret.get_secret_value() for secret in settings.secrets.model_dump().values() if secret is not None
    ]
    password = redis_password(settings.queue.redis_url)
    # As written in the URL (percent-encoded) and as Redis receives it.
    return values + ([password, unquote(password)] if password else [])


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [job ID]: message``."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(job_tag)s: %(message)s")
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """The masked line."""
        job_id = getattr(record, "job_id", None)
        record.job_tag = f" [job {job_id}]" if job_id else ""
        return self.redactor(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, job_id and error when there are."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """The masked JSON line."""
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redactor(record.getMessage()),
        }
        job_id = getattr(record, "job_id", None)
        if job_id:
            entry["job_id"] = job_id
        if record.exc_info:
            entry["error"] = self.redactor(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def log_handler(
    config: LoggingConfig, secrets: Iterable[str], stream: IO[str] | None = None
) -> logging.Handler:
    """A handler writing to ``stream`` (stderr) in the configured format, job ids added, secrets masked."""
    handler = _Handler(stream)
    handler.addFilter(JobIdFilter())
    redactor = Redactor(secrets)
    handler.setFormatter(JsonFormatter(redactor) if config.json_lines else TextFormatter(redactor))
    return handler


def configure_logging(settings: Settings, level: int | str) -> None:
    """Send every logger's records through one such handler at ``level``.

    Like ``logging.basicConfig``, it leaves alone a root logger someone else set up (a test runner).
    """
    root = logging.getLogger()
    if any(not isinstance(h, _Handler) for h in root.handlers):
        return
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(log_handler(settings.logging, secret_values(settings)))
    root.setLevel(level)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in typeshed
    """Marks the handler configure_logging installed."""
