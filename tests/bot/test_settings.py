"""config.yaml: defaults, the documented file, and errors that name the key."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.settings import REDIS_URL_FORM, ConfigError, Secrets, Settings

REPO = Path(__file__).resolve().parents[2]
#: Keys of the settings model that config.yaml does not show: the old one-model form, and secrets.
NOT_SHOWN = {"model", "secrets"}


def shipped_config() -> str:
    """config.yaml as the project ships it: the committed file, not the working copy.

    The README tells self-hosters to edit ./config.yaml in their clone; their edits must not fail the
    suite, so the reference is read from git's HEAD (one file, no packaged copy that could drift).
    Outside a git checkout (an unpacked sdist) the file on disk is all there is.
    """
    git = shutil.which("git")
    if git is not None and (REPO / ".git").exists():
        done = subprocess.run(
            [git, "-C", str(REPO), "show", "HEAD:config.yaml"], capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            return done.stdout
    return (REPO / "config.yaml").read_text(encoding="utf-8")


def setting_keys(model: BaseModel, prefix: str = "") -> Iterator[str]:
    """Every leaf key of a settings model, dotted (``web.port``); a dict of models by its first entry."""
    for name, field in type(model).model_fields.items():
        if not prefix and name in NOT_SHOWN:
            continue
        key = field.alias or name
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from setting_keys(value, f"{prefix}{key}.")
        elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            first = next(iter(value))
            yield from setting_keys(value[first], f"{prefix}{key}.{first}.")
        else:
            yield prefix + key


_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[\w-]+):(?P<rest>.*)$")


def commented_keys(text: str) -> dict[str, bool]:
    """Each key of a YAML file, dotted, and whether a comment explains it (on its line or right under it)."""
    found: dict[str, bool] = {}
    path: list[tuple[int, str]] = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        match = _KEY_LINE.match(line)
        if match is None:
            continue
        indent = len(match["indent"])
        path = [(i, k) for i, k in path if i < indent] + [(indent, match["key"])]
        following = lines[number + 1] if number + 1 < len(lines) else ""
        continued = following.strip().startswith("#") and len(following) - len(following.lstrip()) > indent
        found[".".join(k for _, k in path)] = " #" in match["rest"] or continued
    return found


def test_the_shipped_config_documents_exactly_the_defaults() -> None:
    shipped = Settings.parse(shipped_config(), source="config.yaml (HEAD)")
    assert shipped.model_dump(exclude={"secrets"}) == Settings().model_dump(exclude={"secrets"})


def test_the_shipped_config_shows_every_setting_with_a_comment() -> None:
    shown = commented_keys(shipped_config())
    keys = list(setting_keys(Settings()))
    missing = [key for key in keys if key not in shown]
    assert not missing, (
        f"config.yaml does not show these settings (add each with its default and a comment): {missing}"
    )
    bare = [key for key in keys if not shown[key]]
    assert not bare, f"these config.yaml keys have no comment saying what they do: {bare}"


def test_no_file_means_built_in_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    models = Settings.load().models
    assert (models.image, models.video, list(models.entries)) == (
        "tiny",
        "tiny-video",
        ["tiny", "tiny-video"],
    )


def test_an_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        Settings.load(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model:\n  steps: lots\n", "model.steps: Input should be a valid integer"),
        ("model:\n  stepz: 4\n", "model.stepz: unknown key"),
        ("worker:\n  max_batch: 0\n", "worker.max_batch: Input should be greater than or equal to 1"),
        ("limits:\n  default_n: 9\n  max_n: 4\n", "default_n (9) must not exceed max_n (4)"),
        ("model:\n  name: [tiny\nworker: {}\n", "line 3 is not valid YAML"),
        ("- just\n- a list\n", "expected a mapping of sections"),
        ("queue:\n  backend: kafka\n", "queue.backend: Input should be 'memory' or 'redis'"),
    ],
)
def test_bad_files_name_the_key_and_what_was_expected(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.parse(text, source="config.yaml")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("config.yaml:")


def test_values_are_read(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(
        "models:\n  image: turbo\n  entries:\n    turbo: {name: sd-turbo, dtype: float16}\n"
        "    tiny-video: {}\nworker:\n  max_batch: 4\n"
    )
    settings = Settings.load(file)
    turbo = settings.models.entries["turbo"]
    assert (turbo.name, turbo.dtype, settings.worker.max_batch) == ("sd-turbo", "float16", 4)
    assert settings.models.entries["tiny-video"].name == "tiny-video"  # the entry's name by default


def test_an_old_model_section_becomes_the_one_entry_of_models(tmp_path: Path) -> None:
    image = Settings.parse("model:\n  name: sd-turbo\n  dtype: float16\n").models
    assert (image.image, image.video, image.entries["sd-turbo"].dtype) == ("sd-turbo", None, "float16")
    video = Settings.parse("model:\n  name: tiny-video\n").models
    assert (video.image, video.video, list(video.entries)) == (None, "tiny-video", ["tiny-video"])
    folder = Settings.parse("model:\n  name: ./weights/My Model\n").models
    assert list(folder.entries) == ["default"] and folder.entries["default"].name == "./weights/My Model"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model: {name: tiny}\nmodels: {image: tiny}\n", "use models: alone"),
        ("models: {image: nope}\n", "image: 'nope' is not one of the entries (tiny, tiny-video)"),
        ("models: {entries: {Big Model: {}}}\n", "must be 1-32 lowercase letters"),
        ("models: {image: null, video: null}\n", "set image or video"),
        ("models: {video: tiny}\n", "video: 'tiny' is not a clip model"),
    ],
)
def test_a_wrong_models_section_says_what_shape_is_expected(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.parse(text, source="config.yaml")
    message = str(caught.value)
    assert expected in message and "\n" not in message


def test_secrets_come_from_the_environment_only() -> None:
    secrets = Secrets.from_env({"MEMEBOT_DISCORD_TOKEN": "abc.def", "OTHER": "x"})
    assert secrets.discord_token is not None
    assert secrets.discord_token.get_secret_value() == "abc.def"
    assert "abc.def" not in repr(secrets)
    settings = Settings.parse("secrets:\n  discord_token: from-file\n")
    token = settings.secrets.discord_token
    assert token is None or token.get_secret_value() != "from-file"


@pytest.mark.parametrize("password", ["se#cret", "pa/ss", "pa?ss", "pa#s/s?x", "12#"])
def test_a_redis_password_that_breaks_the_url_is_one_line_that_never_shows_it(password: str) -> None:
    text = f"queue:\n  backend: redis\n  redis_url: 'redis://:{password}@redis:6379/0'\n"
    with pytest.raises(ConfigError) as caught:
        Settings.parse(text, source="config.yaml")
    # The same fixed line whatever the URL: nothing of it is quoted.
    assert str(caught.value) == f"config.yaml: queue.redis_url: {REDIS_URL_FORM}"
    assert "# as %23" in REDIS_URL_FORM and "\n" not in REDIS_URL_FORM


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("redis://:se%23cret@redis:6379/0", "se#cret"),
        ("redis://user:p@ss:w@redis:6379/1", "p@ss:w"),  # the last @ ends the user part
        ("rediss://:pa%2Fss%3F@redis", "pa/ss?"),
        ("unix:///run/redis.sock?db=0", None),
    ],
)
def test_any_password_can_be_written_percent_encoded(url: str, password: str | None) -> None:
    from redis.connection import parse_url

    settings = Settings.parse(f"queue:\n  redis_url: '{url}'\n")
    assert parse_url(settings.queue.redis_url).get("password") == password


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("queue:\n  redis_url: 5\n", "5"),
        ("queue:\n  redis_url: [redis://:hunter2@x]\n", "hunter2"),
        ("web:\n  port: 'http://admin:hunter2@proxy'\n", "hunter2"),
    ],
)
def test_config_errors_never_echo_a_secret_bearing_value(text: str, hidden: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.parse(text, source="config.yaml")
    assert "value hidden: it may hold a secret" in str(caught.value)
    assert f"got {hidden}" not in str(caught.value) and "hunter2" not in str(caught.value)
