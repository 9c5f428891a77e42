"""``config.yaml`` loaded into one validated, frozen model; secrets come from the environment only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from generators.config import LimitsConfig, ModelConfig, RenderConfig, Section, WorkerConfig

DEFAULT_PATH = Path("config.yaml")


class ConfigError(Exception):
    """The config file cannot be used; the message names the key and what was expected."""


class StoreConfig(Section):
    """Where jobs are recorded."""

    path: Path = Field(Path("data/memebot.db"), description="SQLite file (':memory:' keeps nothing).")


class QueueConfig(Section):
    """Where jobs wait for a worker."""

    backend: Literal["memory"] = "memory"


class LoggingConfig(Section):
    """How the bot logs."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Secrets(BaseModel):
    """Credentials, read from the environment only so they never land in a config file or a log."""

    model_config = ConfigDict(frozen=True)

    discord_token: SecretStr | None = None
    reddit_client_id: SecretStr | None = None
    reddit_client_secret: SecretStr | None = None
    reddit_username: SecretStr | None = None
    reddit_password: SecretStr | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Secrets:
        """Read ``MEMEBOT_<NAME>`` variables."""
        env = os.environ if environ is None else environ
        values = {name: env.get(f"MEMEBOT_{name.upper()}") for name in cls.model_fields}
        return cls(**{k: v for k, v in values.items() if v})


class Settings(Section):
    """Everything the bot reads from ``config.yaml``; every key has a default."""

    model: ModelConfig = ModelConfig()
    limits: LimitsConfig = LimitsConfig()
    worker: WorkerConfig = WorkerConfig()
    render: RenderConfig = RenderConfig()
    store: StoreConfig = StoreConfig()
    queue: QueueConfig = QueueConfig()
    logging: LoggingConfig = LoggingConfig()
    secrets: Secrets = Field(default_factory=Secrets.from_env, exclude=True)

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """Read ``path`` (default ``./config.yaml``; built-in defaults when that is absent)."""
        if path is None and not DEFAULT_PATH.exists():
            return cls()
        file = path or DEFAULT_PATH
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"{file}: cannot read it ({error.strerror})") from error
        return cls.parse(text, source=str(file))

    @classmethod
    def parse(cls, text: str, *, source: str = "config") -> Settings:
        """Validate YAML text; errors name the key, what was expected and what was found."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(
                f"{source}:{where} is not valid YAML ({getattr(error, 'problem', error)})"
            ) from error
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of sections (model:, limits: ...), got {data!r}")
        data.pop("secrets", None)
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise ConfigError(_explain(error, source)) from error


def _explain(error: ValidationError, source: str) -> str:
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        found = problem.get("input")
        detail = "unknown key" if problem["type"] == "extra_forbidden" else problem["msg"]
        lines.append(
            f"{source}: {key}: {detail}"
            + ("" if problem["type"] == "extra_forbidden" else f" (got {_short(found)})")
        )
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
