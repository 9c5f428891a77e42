"""``config.yaml`` loaded into one validated, frozen model; secrets come from the environment only."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from generators.config import (
    LimitsConfig,
    ModelConfig,
    ModelsConfig,
    RenderConfig,
    Section,
    WorkerConfig,
    entry_kind,
)
from generators.safety.config import SafetyConfig

DEFAULT_PATH = Path("config.yaml")


MODEL_AND_MODELS = (
    "use models: alone (the old model: section is one entry of it), e.g. "
    "models: {image: tiny, video: tiny-video, entries: {tiny: {}, tiny-video: {}}}"
)


class ConfigError(Exception):
    """The config file cannot be used; the message names the key and what was expected."""


class LoginRefused(Exception):
    """A platform refused the credentials at start (a wrong token): no retry can help; one line says so."""


class StoreConfig(Section):
    """Where jobs are recorded."""

    path: Path = Field(Path("data/memebot.db"), description="SQLite file (':memory:' keeps nothing).")
    retention_days: float = Field(
        30.0, ge=0, description="Ended jobs' files, pages and records are deleted after this (0: kept)."
    )
    cleanup_interval_s: float = Field(3600.0, gt=0, description="How often expired results are looked for.")


class QueueConfig(Section):
    """Where jobs wait for a worker: in this process, or Redis Streams shared by GPU workers."""

    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    prefix: str = Field("memebot", description="Prefix of every Redis key and stream.")
    claim_idle_s: float = Field(60.0, gt=0, description="A job idle this long on a dead worker is reclaimed.")
    max_deliveries: int = Field(3, ge=1, description="Attempts before a job goes to the dead-letter stream.")
    result_ttl_s: int = Field(86400, ge=60, description="How long result files stay in Redis.")
    source_budget_mb: int = Field(256, ge=1, description="Remix pictures Redis holds at once, in MiB.")
    source_ttl_s: int = Field(3600, ge=60, description="Longest a remix picture waits on Redis (backstop).")

    @field_validator("redis_url")
    @classmethod
    def _parses(cls, url: str) -> str:
        """A URL whose password breaks its parsing would connect elsewhere, or crash showing part of it."""
        check_redis_url(url)
        return url


REDIS_URL_FORM = (
    "expected redis://[user:password@]host[:port][/db] (or rediss://, unix://); percent-encode "
    "# / ? @ : % in the password (# as %23, / as %2F, ? as %3F, @ as %40, : as %3A, % as %25)"
)
REDIS_SCHEMES = ("redis", "rediss", "unix")


def check_redis_url(url: str) -> None:
    """Raise ValueError naming the wrong part (scheme, port, database) unless Redis clients can read it.

    The message never quotes ``url`` or a part that may hold a piece of the password.
    """
    problem = redis_url_problem(url)
    if problem:
        raise ValueError(problem)


def redis_url_problem(url: str) -> str:
    """What is wrong with a Redis URL, in one line ("" when nothing is)."""
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        scheme = f"{parts.scheme}://" if parts.scheme.isalnum() else "the scheme"
        return (
            f"{scheme} is not a Redis URL: use redis://host:6379/0 (rediss:// for TLS, unix:// for a socket)"
        )
    if "#" in url:
        return REDIS_URL_FORM
    port = _port_text(parts.netloc)
    if port and not port.isdigit():  # a password's ":" or "/" left part of it where the port goes
        return REDIS_URL_FORM
    if port and not 0 < int(port) <= 65535:
        return f"port {port} is out of range: a port is a number from 1 to 65535"
    if parts.scheme == "unix":
        return ""
    if "@" in parts.path or "@" in parts.query:  # a password's "/" or "?" ended the host early
        return REDIS_URL_FORM
    database = parts.path.removeprefix("/")
    if not parts.hostname:
        return f"no host: {REDIS_URL_FORM}"
    if database and not database.isdigit():
        return "the database (after the host's /) must be a number, e.g. /0"
    return ""


def _port_text(netloc: str) -> str:
    """The text after the host's ":" ("" when there is none); never part of a well-formed password."""
    host = netloc.rpartition("@")[2]
    if host.startswith("["):  # an IPv6 literal
        host = host.partition("]")[2]
    return host.partition(":")[2] if ":" in host else ""


def redis_password(url: str) -> str | None:
    """The password in a Redis URL as written (still percent-encoded), if it has one."""
    return urlsplit(url).password


#: Hosts a link can only be opened from on the bot's own machine.
_THIS_MACHINE = ("127.0.0.1", "localhost", "::1", "0.0.0.0")  # noqa: S104 - compared, never bound


class WebConfig(Section):
    """The web server: result pages for Reddit links, /healthz and /metrics."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = Field(
        "", description="Base of the links the bot posts; empty: http://127.0.0.1:<port> (this machine only)."
    )
    idle_timeout_s: float = Field(
        15.0, gt=0, description="An idle keep-alive connection, or one still sending its headers, is closed."
    )
    body_timeout_s: float = Field(10.0, ge=0, description="Longest wait for a request body the server skips.")

    @model_validator(mode="before")
    @classmethod
    def _links_follow_the_port(cls, data: Any) -> Any:
        """Unset, the links point at this server's own port (``web.port: 18081`` links to 18081)."""
        if isinstance(data, dict) and not data.get("public_url"):
            port = data.get("port", 8080)
            return {**data, "public_url": f"http://127.0.0.1:{port or 8080}"}
        return data

    @property
    def local_links(self) -> bool:
        """Whether the links only work on this machine (``public_url`` unset or on the loopback)."""
        return urlsplit(self.public_url).hostname in _THIS_MACHINE


class RedditConfig(Section):
    """Answering u/<bot> mentions (and triggers in watched subreddits)."""

    enabled: bool = False
    user_agent: str = "memebot/0.1 (self-hosted image bot)"
    oauth_url: str = "https://oauth.reddit.com"
    reddit_url: str = "https://www.reddit.com"
    short_url: str = "https://redd.it"
    poll_interval_s: float = Field(5.0, gt=0)
    max_age_hours: float = Field(72.0, gt=0, description="Older mentions are skipped.")
    watch_subreddits: tuple[str, ...] = ()
    trigger: str = "!imagine"
    allow_subreddits: tuple[str, ...] = Field((), description="Empty: every subreddit.")
    deny_subreddits: tuple[str, ...] = ()
    banned_users: tuple[str, ...] = ()
    author_cooldown_s: float = Field(60.0, ge=0)
    subreddit_per_hour: int = Field(30, ge=1)
    reply_to_refusals: bool = True
    image_post_subreddit: str | None = None
    image_post_attempts: int = Field(3, ge=1, description="Tries of an image post before giving up on it.")
    retry_base_s: float = Field(5.0, gt=0, description="First wait after a 429 or 5xx; doubles each time.")
    retry_max_s: float = Field(300.0, gt=0, description="Longest wait between retries.")


class DiscordConfig(Section):
    """The Discord bot: /imagine and friends, buttons, meme channels, hall of fame."""

    enabled: bool = False
    keep_running_on_login_error: bool = Field(
        False,
        description="A refused token stops `memebot run` (exit 1) unless true: then the other platforms"
        " keep serving and /healthz answers 503 with the reason.",
    )
    api_base_url: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg"
    sync_guilds: tuple[int, ...] = Field((), description="Sync commands to these guilds only (instant).")
    sharded: bool = False
    allow_dms: bool = True
    meme_channels: tuple[int, ...] = ()
    trigger: str = "!imagine"
    hall_of_fame_channel: int | None = None
    hall_of_fame_stars: int = Field(5, ge=1)
    ban_words: tuple[str, ...] = ()
    ban_patterns: tuple[str, ...] = ()
    negative_prefix: str = ""
    nsfw_words: tuple[str, ...] = ("nsfw", "nude", "naked", "porn", "sex", "gore")
    spoiler_outside_nsfw: bool = False
    user_rate: int = Field(6, ge=1, description="Requests per user per rate_window_s.")
    server_rate: int = Field(60, ge=1, description="Requests per server per rate_window_s.")
    rate_window_s: float = Field(60.0, gt=0)
    edit_interval_s: float = Field(1.2, gt=0, description="Least time between progress edits of a message.")
    notify_after_s: float = Field(
        60.0, ge=0, description="A job that took longer ends with a follow-up pinging its requester."
    )


class LoggingConfig(Section):
    """How the bot logs."""

    # "json" is also a (deprecated) BaseModel method, so the field takes another name in Python.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_lines: bool = Field(False, alias="json", description="One JSON object per line (log shippers).")


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

    models: ModelsConfig = ModelsConfig()
    model: ModelConfig | None = Field(None, description="The older one-model form; read into models:.")
    limits: LimitsConfig = LimitsConfig()
    worker: WorkerConfig = WorkerConfig()
    render: RenderConfig = RenderConfig()
    store: StoreConfig = StoreConfig()
    queue: QueueConfig = QueueConfig()
    web: WebConfig = WebConfig()
    reddit: RedditConfig = RedditConfig()
    discord: DiscordConfig = DiscordConfig()
    logging: LoggingConfig = LoggingConfig()
    safety: SafetyConfig = SafetyConfig()
    secrets: Secrets = Field(default_factory=Secrets.from_env, exclude=True)

    @model_validator(mode="after")
    def _one_model_section(self) -> Settings:
        """An old single ``model:`` section still works: it becomes the one entry of ``models:``."""
        if self.model is None:
            return self
        if "models" in self.model_fields_set:
            raise ValueError(MODEL_AND_MODELS)
        models = ModelsConfig.single(self.model, entry_kind(self.model))
        return self.model_copy(update={"models": models, "model": None})

    @staticmethod
    def source(path: Path | None = None) -> Path | None:
        """The file :meth:`load` reads for ``path``: it, else ``./config.yaml`` if there is one, else none."""
        if path is None and not DEFAULT_PATH.exists():
            return None
        return path or DEFAULT_PATH

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """Read ``path`` (default ``./config.yaml``; built-in defaults when that is absent)."""
        file = cls.source(path)
        if file is None:
            return cls()
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
        # A whole section's value is no help to echo; a single value is, unless it may hold a secret.
        quiet = problem["type"] in ("extra_forbidden", "value_error")
        hidden = _secret_bearing(key, found)
        shown = "value hidden: it may hold a secret" if hidden else f"got {_short(found)}"
        lines.append(
            f"{source}: {key}: {detail.removeprefix('Value error, ')}" + ("" if quiet else f" ({shown})")
        )
    return "\n".join(lines)


_SECRET_KEY = re.compile(r"(?i)(redis_url|password|passwd|token|secret|credential|api_key)s?$")
_USERINFO = re.compile(r"://[^/?#\s]*@")


def _secret_bearing(key: str, value: Any) -> bool:
    """Whether a config value may hold a credential: a secret's key, or a URL with a user part."""
    return bool(_SECRET_KEY.search(key)) or bool(_USERINFO.search(repr(value)))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
