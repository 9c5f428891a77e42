"""Log lines: the job they are about, text or JSON, and no secret ever printed."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.logs import Redactor, log_handler, secret_values
from bot.settings import LoggingConfig, QueueConfig, Secrets, Settings
from generators.logs import job_context

TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU0.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"


def emit(config: LoggingConfig, secrets: list[str], build: object) -> str:
    """What one handler writes for the records ``build(logger)`` logs."""
    stream = io.StringIO()
    logger = logging.getLogger(f"memebot.test.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = log_handler(config, secrets, stream)
    logger.addHandler(handler)
    try:
        build(logger)  # type: ignore[operator]
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_text_lines_name_the_job_from_the_context_or_from_extra() -> None:
    def build(logger: logging.Logger) -> None:
        with job_context("job123"):
            logger.info("started")
        logger.info("idle")
        logger.warning("taken over", extra={"job_id": "job456"})

    lines = emit(LoggingConfig(), [], build).splitlines()
    assert lines[0].endswith("[job job123]: started")
    assert "[job" not in lines[1] and lines[1].endswith(": idle")
    assert lines[2].endswith("[job job456]: taken over")


@pytest.mark.expect_errors
def test_json_lines_carry_the_job_id_and_the_error() -> None:
    def build(logger: logging.Logger) -> None:
        with job_context("job123"):
            try:
                raise ValueError(f"bad token {TOKEN}")
            except ValueError:
                logger.exception("could not reply")

    (line,) = emit(LoggingConfig(json_lines=True), [], build).splitlines()
    entry = json.loads(line)
    assert entry["job_id"] == "job123"
    assert entry["level"] == "ERROR" and entry["message"] == "could not reply"
    assert "ValueError: bad token ***" in entry["error"]
    assert TOKEN not in line


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"login with {TOKEN}", TOKEN),
        ("POST /api/v10/webhooks/123456/aW50ZXJhY3Rpb246MTIzNDU2Nzg5 failed", "aW50ZXJhY3Rpb246MTIzNDU2Nzg5"),
        ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"),
        ("redis://:hunter2hunter2@redis.internal:6379/0 refused", "hunter2hunter2"),
        ("reddit said no to s3cr3t-password", "s3cr3t-password"),
    ],
)
def test_secrets_are_masked(text: str, secret: str) -> None:
    masked = Redactor(["s3cr3t-password"])(text)
    assert secret not in masked
    assert "***" in masked


def test_every_configured_secret_is_known_to_the_redactor() -> None:
    settings = Settings(queue=QueueConfig(redis_url="redis://user:pa55word99@host:6379/0")).model_copy(
        update={"secrets": Secrets.from_env({"MEMEBOT_REDDIT_PASSWORD": "hamster-pass", "MEMEBOT_X": "no"})}
    )
    values = secret_values(settings)
    assert set(values) == {"hamster-pass", "pa55word99"}

    def build(logger: logging.Logger) -> None:
        logger.info("config: %s %s", settings.queue.redis_url, "hamster-pass")

    line = emit(LoggingConfig(), values, build)
    assert "hamster-pass" not in line and "pa55word99" not in line


@pytest.mark.parametrize("secret", ["abc", "x9", "#"])
def test_a_secret_of_any_length_is_masked(secret: str) -> None:
    def build(logger: logging.Logger) -> None:
        logger.info("logging in with password %s", secret)

    line = emit(LoggingConfig(), [secret], build)
    assert line.rstrip().endswith("logging in with password ***")


def test_a_redis_password_is_masked_as_written_and_as_sent() -> None:
    settings = Settings(queue=QueueConfig(redis_url="redis://:p%23w@redis:6379/0"))
    values = secret_values(settings)
    assert set(values) == {"p%23w", "p#w"}

    def build(logger: logging.Logger) -> None:
        logger.info("connecting to %s with %s", settings.queue.redis_url, "p#w")

    line = emit(LoggingConfig(), values, build)
    assert "p%23w" not in line and "p#w" not in line and "redis://:***@redis:6379/0" in line
