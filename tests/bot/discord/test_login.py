"""Logging in to Discord: a refused token stops `run`, a network failure is retried, health says which.

The real adapter and the real `memebot run` process against the fake Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route
from pydantic import SecretStr

from bot.discord import Backoff, running
from bot.preflight import Level, connect_findings
from bot.settings import DiscordConfig, LoginRefused, Secrets, Settings
from generators.pipelines import DiffusersBackend
from tests.fakes.discord import FakeDiscord
from tests.fakes.loopback import free_port
from tests.helpers import open_service


@pytest.fixture(autouse=True)
def _restore_discord_urls() -> AsyncIterator[None] | object:
    old = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old


def settings_for(fake: FakeDiscord, token: str, **config: object) -> Settings:
    discord = DiscordConfig(enabled=True, api_base_url=fake.api_base, gateway_url=fake.gateway_url, **config)
    return Settings(discord=discord, secrets=Secrets(discord_token=SecretStr(token)))


async def test_a_refused_token_stops_the_start(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path, start_worker=False) as service:
        with pytest.raises(LoginRefused, match="Discord refused MEMEBOT_DISCORD_TOKEN"):
            async with running(settings_for(fake, "wrong.token.here"), service):
                pass
        assert fake.requests_to("GET", "/users/@me")[-1].status == 401


async def test_a_refused_token_can_leave_the_rest_serving_and_unhealthy(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    settings = settings_for(fake, "wrong.token.here", keep_running_on_login_error=True)
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path, start_worker=False) as service:
        async with running(settings, service):
            assert "refused MEMEBOT_DISCORD_TOKEN" in service.health.problems["discord"]
        assert not fake.connections  # it never went on to the gateway


async def test_a_discord_outage_at_start_is_retried_and_health_recovers(
    tiny_backend: DiffusersBackend, tmp_path: Path, fake: FakeDiscord
) -> None:
    outage = fake.fail("GET", "/users/@me", status=503, code=0, message="upstream connect error", times=2)
    seen: list[str] = []
    async with open_service(tiny_backend, tmp_path / "jobs.db", tmp_path, start_worker=False) as service:
        report = service.health.report

        def spy(component: str, problem: str | None) -> None:
            seen.append(f"{component}: {problem}")
            report(component, problem)

        service.health.report = spy  # type: ignore[method-assign]
        async with running(settings_for(fake, fake.token), service, backoff=Backoff(0.01, 0.05)):
            await fake.wait_for_connection("identify")
            async with asyncio.timeout(10):
                while not service.health.ok:  # noqa: ASYNC110 - health has no event to wait on
                    await asyncio.sleep(0.01)
            assert not outage.pending
    assert seen[0].startswith("discord: cannot log in, retrying: DiscordServerError: 503")
    assert seen[-1] == "discord: None"  # READY cleared it
    # One report per state change would be logged: the repeats below are the same problem, not new lines.
    assert len(set(seen)) == 2


# -- the real process -------------------------------------------------------------------------------


def write_config(tmp_path: Path, discord: str, web_port: int | None = None) -> Path:
    web = f"web:\n  enabled: true\n  port: {web_port}\n" if web_port else ""
    config = tmp_path / "config.yaml"
    config.write_text(
        "models:\n  image: tiny\n  video: null\n  entries:\n    tiny: {size: 64, steps: 1}\n"
        f"store:\n  path: {tmp_path / 'memebot.db'}\nworker:\n  results_dir: {tmp_path / 'results'}\n"
        f"discord:\n  enabled: true\n{discord}{web}"
    )
    return config


@contextlib.asynccontextmanager
async def memebot_run(config: Path, token: str) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {**os.environ, "MEMEBOT_DISCORD_TOKEN": token}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--config",
        str(config),
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def read_until(proc: asyncio.subprocess.Process, pattern: str, seen: list[str]) -> str:
    """Lines of the process's output until one matches ``pattern`` (all of them kept in ``seen``)."""
    assert proc.stdout is not None
    async with asyncio.timeout(120):
        while line := (await proc.stdout.readline()).decode():
            seen.append(line)
            if re.search(pattern, line):
                return line
    raise AssertionError(f"the process ended without {pattern!r}:\n{''.join(seen)}")


async def test_run_with_a_wrong_token_exits_1_with_one_line(tmp_path: Path, fake: FakeDiscord) -> None:
    config = write_config(tmp_path, f"  api_base_url: {fake.api_base}\n  gateway_url: {fake.gateway_url}\n")
    async with memebot_run(config, "wrong.token.here") as proc:
        async with asyncio.timeout(120):
            output, _ = await proc.communicate()
    text = output.decode()
    assert proc.returncode == 1, text
    assert text.splitlines()[-1].startswith("login error: Discord refused MEMEBOT_DISCORD_TOKEN")
    assert "Traceback" not in text and "ready:" not in text
    assert "PyNaCl" not in text and "davey" not in text  # memebot has no voice: no warning about it


async def _healthz(port: int) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as response:
        return response.status, json.loads(await response.text())


async def test_run_without_dns_for_discord_stays_up_unhealthy_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    # .invalid never resolves (RFC 6761): what an unreachable discord.com looks like.
    urls = "  api_base_url: https://discord.invalid/api/v10\n  gateway_url: wss://gateway.discord.invalid\n"
    config = write_config(tmp_path, urls, web_port=port)
    seen: list[str] = []
    async with memebot_run(config, "some.token.value") as proc:
        await read_until(proc, r"ready: models", seen)
        status, body = await _healthz(port)
        assert status == 503 and body["status"] == "unhealthy"
        problems = body["problems"]
        assert isinstance(problems, dict) and "discord.invalid" in problems["discord"]
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(120):
            rest, _ = await proc.communicate()
    text = "".join(seen) + rest.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    discord_lines = [line for line in text.splitlines() if "discord.invalid" in line]
    assert len(discord_lines) == 1, text  # one line, not one per retry and no traceback


async def test_run_kept_up_after_a_refused_token_answers_503_with_the_reason(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    port = free_port()
    urls = f"  api_base_url: {fake.api_base}\n  gateway_url: {fake.gateway_url}\n"
    config = write_config(tmp_path, urls + "  keep_running_on_login_error: true\n", web_port=port)
    seen: list[str] = []
    async with memebot_run(config, "wrong.token.here") as proc:
        await read_until(proc, r"ready: models", seen)
        status, body = await _healthz(port)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(120):
            await proc.communicate()
    assert status == 503
    problems = body["problems"]
    assert isinstance(problems, dict) and "refused MEMEBOT_DISCORD_TOKEN" in problems["discord"]
    assert proc.returncode == 0


async def test_check_config_connect_logs_in_to_discord(fake: FakeDiscord) -> None:
    good = await connect_findings(settings_for(fake, fake.token))
    assert [f.line() for f in good] == [f"  discord (--connect): logged in as {fake.bot.username}"]
    (bad,) = await connect_findings(settings_for(fake, "wrong.token.here"))
    assert bad.level is Level.PROBLEM and "Discord refused MEMEBOT_DISCORD_TOKEN" in bad.text
    assert not fake.connections  # a check logs in over REST only: no gateway session, no commands synced
    assert not fake.requests_to("PUT", "/applications/{application_id}/commands")


def test_a_reconnect_after_a_network_failure_is_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    discord_log = logging.getLogger("discord.client")
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except OSError:
        discord_log.exception("Attempting a reconnect in %.2fs", 1.5)
    discord_log.info("logging in using static token")
    (record,) = [r for r in caplog.records if r.name == "discord.client"]
    assert record.levelname == "WARNING" and record.exc_info is None
    assert record.getMessage() == (
        "Attempting a reconnect in 1.50s: ConnectionResetError: [Errno 104] Connection reset by peer"
    )
