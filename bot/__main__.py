"""The composition root and command line: every client is built here and handed down.

``memebot imagine``, ``memebot run``, ``memebot worker`` and ``memebot check-config``; errors a user
causes print one line (no traceback) and exit with 2 (bad input or config) or 1 (the model, the queue or
the job failed).

Whatever needs torch (the model pool, the worker, its Redis relay) is imported inside the function that
builds it, so a bot on ``queue.backend: redis`` never loads the GPU stack.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot import retention
from bot.addresses import cli_path
from bot.jobs import JobService
from bot.logs import configure_logging
from bot.progress import ProgressLine
from bot.settings import ConfigError, QueueConfig, Settings
from bot.store import Store
from generators.config import LimitsConfig, ModelConfig, ModelsConfig
from generators.errors import ModelLoadError, UserError
from generators.grammar import provenance
from generators.intake import MIB, BadImage
from generators.models import Catalog
from generators.presets import describe_model
from generators.requests import Failed, Finished, GenerationResult
from generators.sources import SourceStore, sources_folder
from generators.streams.keys import Keys
from generators.streams.submit import RedisRunner

log = logging.getLogger("memebot")

EXIT_FAILED = 1
EXIT_USAGE = 2


def open_core(settings: Settings) -> contextlib.AbstractAsyncContextManager[JobService]:
    """The job service and what it runs on, per ``queue.backend``: opened in order, closed in reverse."""
    return _remote_core(settings) if settings.queue.backend == "redis" else _local_core(settings)


@contextlib.asynccontextmanager
async def _local_core(settings: Settings) -> AsyncIterator[JobService]:
    """Models, in-process queue, worker, store and job service."""
    from generators.local import LocalRunner
    from generators.pool import ModelPool
    from generators.queue import InProcessQueue
    from generators.worker import GenerationWorker

    pool = ModelPool.from_config(settings.models, settings.worker)
    config = settings.worker
    queue = InProcessQueue(
        per_user=config.per_user_queue, total=config.global_queue, switch_after=config.switch_after
    )
    worker = GenerationWorker(pool, queue, config=config, limits=settings.limits, render=settings.render)
    async with Store.open(settings.store.path) as store:
        sources = SourceStore.beside(config.results_dir, settings.limits)
        service = JobService(
            store, LocalRunner(worker), settings.limits, settings.render.budget_bytes, sources=sources
        )
        async with service, worker:
            yield service


@contextlib.asynccontextmanager
async def _remote_core(settings: Settings) -> AsyncIterator[JobService]:
    """Store, Redis and job service: ``memebot worker`` processes run the model."""
    async with Store.open(settings.store.path) as store, open_redis(settings.queue) as client:
        runner = RedisRunner(
            client,
            Keys(settings.queue.prefix),
            instance=await instance_name(store),
            catalog=catalog_of(settings.models),
            results_dir=settings.worker.results_dir,
            per_user=settings.worker.per_user_queue,
            total=settings.worker.global_queue,
        )
        async with runner:
            sources = SourceStore.beside(settings.worker.results_dir, settings.limits)
            service = JobService(
                store, runner, settings.limits, settings.render.budget_bytes, sources=sources
            )
            async with service:
                yield service


async def instance_name(store: Store) -> str:
    """This bot's name on Redis, kept in its store: a restart reads the same events stream."""
    await store.kv_add("redis", "instance", secrets.token_hex(6))
    return str(await store.kv_get("redis", "instance"))


def catalog_of(models: ModelsConfig) -> Catalog:
    """The configured models as described (nothing loaded): what a bot on Redis offers."""
    infos = tuple(describe_model(config, name) for name, config in models.entries.items())
    return Catalog(infos, image=models.image, video=models.video)


@contextlib.asynccontextmanager
async def open_redis(config: QueueConfig) -> AsyncIterator[Redis]:
    """A client for ``queue.redis_url``, checked with a PING so a wrong URL fails at start."""
    async with Redis.from_url(config.redis_url) as client:
        await client.ping()
        yield client


async def imagine(
    settings: Settings, text: str, output: Path | None, quiet: bool, image: Path | None = None
) -> int:
    """Generate one grid or clip from a command line (remixing ``image`` when given) and save it."""
    async with open_core(settings) as service:
        source = await service.sources.take(read_picture(image, settings.limits)) if image else None
        request = service.parse(text, source=source)
        record = await service.submit(request, owner="cli", platform="cli", reply_to=cli_path(str(output)))
        bar = ProgressLine(sys.stderr, enabled=not quiet)
        async for event in service.watch(record.job.id):
            bar.show(event)
            if isinstance(event, Finished):
                path = _save(event.result, output)
                origin = provenance(record.job.request)
                print(
                    f"{path}  seed {record.job.request.seed}  job {record.job.id}"
                    + (f"  ({origin})" if origin else "")
                )
                return 0
            if isinstance(event, Failed):
                print(f"{'model error' if event.model_load else 'error'}: {event.reason}", file=sys.stderr)
                return EXIT_FAILED
    print("error: the job was cancelled", file=sys.stderr)
    return EXIT_FAILED


def read_picture(path: Path, limits: LimitsConfig) -> bytes:
    """The bytes of a picture file to remix, refused past the byte cap before reading it."""
    try:
        size = path.stat().st_size
        if size > limits.max_image_bytes:
            raise BadImage(f"{path} is over {limits.max_image_bytes / MIB:g} MiB; use a smaller picture")
        return path.read_bytes()
    except OSError as error:
        raise BadImage(f"cannot read {path}: {error.strerror or error}") from error


def _save(result: GenerationResult, output: Path | None) -> Path:
    """Copy the primary file to ``output``, keeping the suffix of the format it was encoded in."""
    source = result.primary.path
    target = output or Path(source.name)
    if target.suffix.lower() != source.suffix.lower():
        target = target.with_suffix(source.suffix)
        print(f"note: saved as {target.name}: that format fits the size budget", file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


#: Front ends started by ``memebot run`` when their config section says ``enabled: true``. Each module
#: has ``running(settings, service)``: an async context manager that serves until it is exited.
ADAPTERS = {"web": "bot.web", "reddit": "bot.reddit", "discord": "bot.discord"}
Adapter = Callable[[Settings, JobService], contextlib.AbstractAsyncContextManager[None]]


def enabled_adapters(settings: Settings) -> dict[str, Adapter]:
    """The ``running`` function of each adapter the config enables (imported only then)."""
    return {
        name: cast(Adapter, importlib.import_module(module).running)
        for name, module in ADAPTERS.items()
        if getattr(settings, name).enabled
    }


async def run(settings: Settings) -> int:
    """Start the worker and whatever the config enables, until SIGINT or SIGTERM."""
    stop = _stop_on_signals()
    async with open_core(settings) as service, contextlib.AsyncExitStack() as stack:
        adapters = enabled_adapters(settings)
        for running in adapters.values():
            # Adapters subscribe to their jobs' events first, so recovered jobs reach them.
            await stack.enter_async_context(running(settings, service))
        await stack.enter_async_context(retention.running(settings, service))
        await service.recover()
        log.info(
            "ready: models %s; serving %s",
            ", ".join(service.catalog.names),
            ", ".join(adapters) or "no front end (enable discord, reddit or web in the config)",
        )
        await stop.wait()
        log.info("shutting down: finishing the running job")
    return 0


async def work(settings: Settings, name: str | None, models: Sequence[str] = ()) -> int:
    """Serve the configured models (or ``models`` of them) as a GPU worker, until SIGINT or SIGTERM."""
    if settings.queue.backend != "redis":
        print("config error: memebot worker needs queue.backend: redis", file=sys.stderr)
        return EXIT_USAGE
    unknown = [m for m in models if m not in settings.models.entries]
    if unknown:
        listed = ", ".join(settings.models.entries)
        print(f"config error: --models {','.join(unknown)}: not in models: ({listed})", file=sys.stderr)
        return EXIT_USAGE
    stop = _stop_on_signals()
    name = name or f"{socket.gethostname()}-{os.getpid()}"
    # A wrong URL fails before minutes of model loading.
    async with open_redis(settings.queue) as client, _worker_core(settings, client, name, models) as served:
        log.info("worker %s ready: models %s", name, ", ".join(served.names))
        await stop.wait()
        log.info("stopping: finishing the running batch")
    return 0


@contextlib.asynccontextmanager
async def _worker_core(
    settings: Settings, client: Redis, name: str, models: Sequence[str]
) -> AsyncIterator[Catalog]:
    """Models, the Redis queue a worker takes from, the worker, and its relay back to the bots."""
    from generators.pool import ModelPool
    from generators.streams.relay import Relay, heartbeat_interval
    from generators.streams.take import RedisQueue
    from generators.worker import GenerationWorker

    config = settings.queue
    keys = Keys(config.prefix)
    pool = ModelPool.from_config(settings.models, settings.worker, only=models)
    # Its own spool: a bot on this machine may share worker.results_dir, and the spool is emptied.
    spool = settings.worker.results_dir / "spool" / name
    queue = RedisQueue(
        client,
        keys,
        name=name,
        models=pool.catalog.names,
        claim_idle_s=config.claim_idle_s,
        max_deliveries=config.max_deliveries,
        switch_after=settings.worker.switch_after,
        sources=sources_folder(spool),
    )
    worker = GenerationWorker(
        pool,
        queue,
        config=settings.worker.model_copy(update={"results_dir": spool}),
        limits=settings.limits,
        render=settings.render,
    )
    queue.on_cancel(worker.cancel)  # a cancel asked on Redis stops the running job at its next step
    relay = Relay(
        client,
        keys,
        queue,
        worker,
        result_ttl_s=config.result_ttl_s,
        heartbeat_s=heartbeat_interval(config.claim_idle_s),
    )
    async with queue, relay, worker:
        yield pool.catalog


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def check_config(settings: Settings, path: Path | None) -> int:
    """Say that the config is valid, list the models, and name any model that cannot be found."""
    models = settings.models
    print(f"{path or 'built-in defaults'}: OK (store {settings.store.path})")
    problems = 0
    for name, config in models.entries.items():
        info = describe_model(config, name)
        default = [kind for kind, n in (("image", models.image), ("video", models.video)) if n == name]
        flags = f" (default for {' and '.join(default)})" if default else ""
        problem = model_problem(config)
        problems += bool(problem)
        status = f"  PROBLEM: {problem}" if problem else ""
        shape = f"{info.kind.value}, {info.source}, {info.size} px, {info.steps} steps"
        print(f"  model {name}: {shape}{flags}{status}")
    return EXIT_FAILED if problems else 0


def model_problem(config: ModelConfig) -> str:
    """Why a model's weights cannot be found, from what can be checked without loading them."""
    folder = config.path or (Path(config.name) if config.name.startswith((".", "/", "~")) else None)
    if folder is not None and not folder.expanduser().is_dir():
        return f"folder {folder} does not exist"
    return ""


def build_parser() -> argparse.ArgumentParser:
    """The ``memebot`` command line."""
    parser = argparse.ArgumentParser(
        prog="memebot", description="AI image grids and clips for chat communities."
    )
    parser.add_argument("--config", type=Path, default=None, help="config file (default ./config.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)
    imagine_cmd = commands.add_parser("imagine", help="generate one grid or clip from a prompt")
    imagine_cmd.add_argument("prompt", help='prompt and flags, e.g. "a hamster godzilla --n 4 --seed 7"')
    imagine_cmd.add_argument("-o", "--output", type=Path, default=None, help="where to save the result")
    imagine_cmd.add_argument(
        "--image", type=Path, default=None, help="a picture to start from (a remix; see --strength)"
    )
    imagine_cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    commands.add_parser("run", help="run the bot with what the config enables")
    worker_cmd = commands.add_parser("worker", help="run the model for bots on Redis (queue.backend: redis)")
    worker_cmd.add_argument("--name", default=None, help="this worker's name (default: host-pid)")
    worker_cmd.add_argument(
        "--models", default="", help="serve only these entries of models: (comma-separated; default all)"
    )
    commands.add_parser("check-config", help="validate the config file and exit")
    for sub in commands.choices.values():
        sub.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, load the settings and run the command; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.load(args.config)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(
        settings, settings.logging.level if args.command in ("run", "worker") else logging.WARNING
    )
    try:
        if args.command == "check-config":
            return check_config(settings, args.config)
        if args.command == "imagine":
            return asyncio.run(imagine(settings, args.prompt, args.output, args.quiet, args.image))
        if args.command == "worker":
            models = [m.strip() for m in args.models.split(",") if m.strip()]
            return asyncio.run(work(settings, args.name, models))
        return asyncio.run(run(settings))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as error:  # found only when starting, e.g. an adapter without its token
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ModelLoadError as error:
        print(f"model error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except RedisError as error:
        print(f"queue error: cannot use Redis ({error})", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def cli() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
