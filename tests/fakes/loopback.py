"""Serving a test's aiohttp app on a free port of 127.0.0.1."""

from __future__ import annotations

import socket

from aiohttp import web


def free_port() -> int:
    """A port nobody listens on now, so links can name it before the server starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    """Start ``app`` on a port the OS picks (bound first, so no other test can take it); clean up the
    runner to stop it."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    return runner, port
