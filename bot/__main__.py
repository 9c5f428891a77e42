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

from PIL import Image
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot import retention
from bot.addresses import cli_path
from bot.jobs import JobService
from bot.logs import configure_logging
from bot.preflight import (
    connect_findings,
    model_findings,
    platform_findings,
    problems,
    public_url_warning,
    redis_problem,
)
from bot.progress import ProgressLine, counted
from bot.settings import ConfigError, LoginRefused, QueueConfig, Settings
from bot.store import Store
from generators.config import LimitsConfig, ModelConfig, ModelsConfig
from generators.errors import ModelLoadError, UserError
from generators.grammar import help_text, provenance
from generators.health import Health
from generators.intake import MIB, BadImage
from generators.models import Catalog, describe_model
from generators.requests import TERMINAL, Failed, Finished, GenerationRequest, GenerationResult, Progress
from generators.safety.classifier import SafetyUnavailable, load_classifier
from generators.sources import SourceStore, sources_folder
from generators.streams.keys import Keys
from generators.streams.submit import RedisRunner

log = logging.getLogger("memebot")

EXIT_FAILED = 1
EXIT_USAGE = 2


def open_core(
    settings: Settings, health: Health | None = None
) -> contextlib.AbstractAsyncContextManager[JobService]:
    """The job service and what it runs on, per ``queue.backend``: opened in order, closed in reverse.

    ``health`` is the one record of what keeps this process from serving: every part reports into it
    and ``/healthz`` reads it.
    """
    health = health or Health()
    if settings.queue.backend == "redis":
        return _remote_core(settings, health)
    return _local_core(settings, health)


@contextlib.asynccontextmanager
async def _local_core(settings: Settings, health: Health) -> AsyncIterator[JobService]:
    """Models, in-process queue, worker, store and job service."""
    from generators.local import LocalRunner
    from generators.pool import ModelPool
    from generators.queue import InProcessQueue
    from generators.worker import GenerationWorker

    pool = ModelPool.from_config(settings.models, settings.worker, health=health)
    config = settings.worker
    queue = InProcessQueue(
        per_user=config.per_user_queue, total=config.global_queue, switch_after=config.switch_after
    )
    worker = GenerationWorker(
        pool,
        queue,
        config=config,
        limits=settings.limits,
        render=settings.render,
        classifier=load_classifier(settings.safety),
    )
    async with Store.open(settings.store.path) as store:
        sources = SourceStore.beside(config.results_dir, settings.limits)
        service = JobService(
            store,
            LocalRunner(worker),
            settings.limits,
            settings.render.budget_bytes,
            sources=sources,
            health=health,
        )
        async with service, worker:
            yield service


@contextlib.asynccontextmanager
async def _remote_core(settings: Settings, health: Health) -> AsyncIterator[JobService]:
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
            health=health,
            source_budget_bytes=settings.queue.source_budget_mb * 1024 * 1024,
            source_ttl_s=settings.queue.source_ttl_s,
        )
        async with runner:
            sources = SourceStore.beside(settings.worker.results_dir, settings.limits)
            service = JobService(
                store, runner, settings.limits, settings.render.budget_bytes, sources=sources, health=health
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
    """Generate one grid or clip from a command line (remixing ``image`` when given) and save it.

    SIGINT (Ctrl-C) or SIGTERM cancels the job at its next step: nothing is written, and the exit
    status is 128 + the signal's number (130 for Ctrl-C).
    """
    async with open_core(settings) as service:
        source = await service.sources.take(read_picture(image, settings.limits)) if image else None
        request = service.parse(text, source=source)
        record = await service.submit(request, owner="cli", platform="cli", reply_to=cli_path(str(output)))
        job_id = record.job.id
        bar = ProgressLine(sys.stderr, enabled=not quiet)
        with Interrupt(service, job_id) as interrupt:
            async for event in service.watch(job_id):
                await interrupt.retry()
                if interrupt.signal is not None and isinstance(event, TERMINAL):
                    bar.end()
                    print(interrupt.outcome(event), file=sys.stderr)
                    return 128 + interrupt.signal
                bar.show(event)
                if isinstance(event, Finished):
                    print(_saved_line(_save(event.result, output), record.job.request, job_id))
                    return 0
                if isinstance(event, Failed):
                    kind = "model error" if event.model_load else "error"
                    print(f"{kind}: {event.reason}", file=sys.stderr)
                    return EXIT_FAILED
    print("error: the job was cancelled", file=sys.stderr)
    return EXIT_FAILED


def _saved_line(path: Path, request: GenerationRequest, job_id: str) -> str:
    origin = provenance(request)
    return f"{path}  seed {request.seed}  job {job_id}" + (f"  ({origin})" if origin else "")


class Interrupt:
    """SIGINT or SIGTERM during ``imagine``: cancel its job at the next step (a second one: the usual way).

    A job between the queue and the worker cannot be cancelled for a moment: the cancel is asked again
    at its next event.
    """

    def __init__(self, service: JobService, job_id: str) -> None:
        self.service = service
        self.job_id = job_id
        #: The number of the signal that asked to stop, once one did.
        self.signal: int | None = None
        self._cancelled = False
        self._tasks: set[asyncio.Future[None]] = set()

    def __enter__(self) -> Interrupt:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._caught, sig)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)

    def _caught(self, sig: signal.Signals) -> None:
        self.signal = int(sig)
        self._restore()  # a second Ctrl-C stops the process the usual way
        task = asyncio.ensure_future(self.retry())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def retry(self) -> None:
        """Ask the job service to cancel, if a signal asked for it and it is not done yet."""
        if self.signal is None or self._cancelled:
            return
        try:
            await self.service.cancel(self.job_id)
            self._cancelled = True
        except UserError:
            pass  # not cancellable this instant (being handed to the worker, or just ended)

    def outcome(self, event: Progress) -> str:
        """The one line saying what the signal did to the job."""
        name = signal.Signals(self.signal or signal.SIGINT).name
        if isinstance(event, Finished):
            kept = event.result.primary.path
            return f"interrupted ({name}): job {self.job_id} had just finished; not saved (it is at {kept})"
        if isinstance(event, Failed):
            return (
                f"interrupted ({name}): job {self.job_id} failed meanwhile ({event.reason}); nothing written"
            )
        return f"cancelled ({name}): job {self.job_id} stopped; nothing written"


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def read_picture(path: Path, limits: LimitsConfig) -> bytes:
    """The bytes of a picture file to remix, refused past the byte cap before reading it."""
    try:
        size = path.stat().st_size
        if size > limits.max_image_bytes:
            raise BadImage(f"{path} is over {limits.max_image_bytes / MIB:g} MiB; use a smaller picture")
        return path.read_bytes()
    except OSError as error:
        raise BadImage(f"cannot read {path}: {error.strerror or error}") from error


#: Still-image formats ``-o`` may ask for besides the PNG the worker writes (a copy in that format).
_REENCODE = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def _save(result: GenerationResult, output: Path | None) -> Path:
    """Write the primary file to ``output``: copied, or re-encoded when ``-o`` names another still format.

    A clip asked for under a still image's suffix (or the other way round) keeps the suffix of the
    format it was encoded in, and a note says which file was written.
    """
    source = result.primary.path
    target = output or Path(source.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() == source.suffix.lower():
        shutil.copyfile(source, target)
        return target
    wanted = _REENCODE.get(target.suffix.lower())
    if wanted is not None and result.primary.mime.startswith("image/") and source.suffix.lower() == ".png":
        _reencode(source, target, wanted)
        return target
    written = target.with_suffix(source.suffix)
    shutil.copyfile(source, written)
    print(
        f"note: wrote {written} ({result.primary.mime}), not {target.name}: "
        f"a {source.suffix.lstrip('.')} is what this result was encoded as",
        file=sys.stderr,
    )
    return written


def _reencode(source: Path, target: Path, kind: str) -> None:
    """A PNG result saved as JPEG or WebP, its command line kept as the file's comment."""
    with Image.open(source) as picture:
        comment = str(picture.info.get("command", ""))
        options: dict[str, object] = {"quality": 92}
        if kind == "JPEG" and comment:
            options["comment"] = comment.encode()
        picture.convert("RGB").save(target, kind, **options)


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
    if warning := public_url_warning(settings):
        log.warning("%s", warning)
    health = Health()
    async with open_core(settings, health) as service, contextlib.AsyncExitStack() as stack:
        adapters = enabled_adapters(settings)
        for running in adapters.values():
            # Adapters subscribe to their jobs' events first, so recovered jobs reach them.
            await stack.enter_async_context(running(settings, service))
        await stack.enter_async_context(retention.running(settings, service))
        await service.recover()
        waiting = [name for name in adapters if name in health.problems]
        log.info(
            "ready: models %s; serving %s%s",
            ", ".join(service.catalog.names),
            ", ".join(adapters) or "no front end (enable discord, reddit or web in the config)",
            f" (not yet: {', '.join(waiting)}, see above)" if waiting else "",
        )
        await stop.wait()
        log.info("shutting down: finishing the running job")
    return 0


async def work(settings: Settings, name: str | None, models: Sequence[str] = ()) -> int:
    """Serve the configured models (or ``models`` of them) as a GPU worker, until SIGINT or SIGTERM."""
    if settings.queue.backend != "redis":
        print("config error: memebot worker needs queue.backend: redis", file=sys.stderr)
        return EXIT_USAGE
    catalog = catalog_of(settings.models)
    for model in models:
        try:
            catalog.check_name(model)
        except UserError as error:
            print(f"config error: --models: {error}", file=sys.stderr)
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
    # A worker serves no /healthz: its health only logs each change (a model that cannot load, a lost
    # Redis group), once per change.
    health = Health()
    pool = ModelPool.from_config(settings.models, settings.worker, only=models, health=health)
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
        health=health,
    )
    worker = GenerationWorker(
        pool,
        queue,
        config=settings.worker.model_copy(update={"results_dir": spool}),
        limits=settings.limits,
        render=settings.render,
        classifier=load_classifier(settings.safety),
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


def check_config(settings: Settings, path: Path | None, *, connect: bool = False) -> int:
    """The pre-flight: every finding ``run`` would refuse to start with, each on one line.

    Exit 0 only when there is no problem (warnings and notes never count); ``connect`` also logs in to
    Discord and Reddit and pings Redis.
    """
    print(f"{path or 'built-in defaults (no ./config.yaml)'}: read (store {settings.store.path})")
    shapes = {name: _shape(config, name) for name, config in settings.models.entries.items()}
    findings = [*model_findings(settings, shapes), *platform_findings(settings)]
    if connect:
        findings += asyncio.run(connect_findings(settings))
    for finding in findings:
        print(finding.line())
    refused = problems(findings)
    if refused:
        print(f"{counted(len(refused), 'problem')}: `memebot run` would not start or not serve")
        return EXIT_FAILED
    print("OK: `memebot run` would start" + ("" if connect else " (add --connect to log in)"))
    return 0


def _shape(config: ModelConfig, name: str) -> str:
    info = describe_model(config, name)
    return f"{info.kind.value}, {info.source}, {info.size} px, {counted(info.steps, 'step')}"


def build_parser() -> argparse.ArgumentParser:
    """The ``memebot`` command line."""
    parser = argparse.ArgumentParser(
        prog="memebot", description="AI image grids and clips for chat communities."
    )
    parser.add_argument("--config", type=Path, default=None, help="config file (default ./config.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)
    imagine_cmd = commands.add_parser(
        "imagine",
        help="generate one grid or clip from a prompt",
        epilog=prompt_flags_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imagine_cmd.add_argument("prompt", help='prompt and flags, e.g. "a hamster godzilla --n 4 --seed 7"')
    imagine_cmd.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="where to save the result (.png, .jpg, .webp, .gif...)",
    )
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
    check_cmd = commands.add_parser(
        "check-config", help="check everything `run` needs (the pre-flight) and exit: 0 when it would start"
    )
    check_cmd.add_argument(
        "--connect", action="store_true", help="also log in to Discord and Reddit and ping Redis"
    )
    for sub in commands.choices.values():
        sub.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def prompt_flags_help() -> str:
    """The flags written inside the prompt, from the grammar (the config's limits apply on top)."""
    lines = help_text(LimitsConfig()).splitlines()[1:-1]
    return "flags inside the prompt:\n" + "\n".join(lines)


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
        return _command(args, settings)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as error:  # found only when starting, e.g. an adapter without its token
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except LoginRefused as error:
        print(f"login error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except ModelLoadError as error:
        print(f"model error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except SafetyUnavailable as error:
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except RedisError as error:
        print(
            f"queue error: cannot use Redis: {redis_problem(error, settings.queue.redis_url)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "check-config":
        return check_config(settings, Settings.source(args.config), connect=args.connect)
    if args.command == "imagine":
        return asyncio.run(imagine(settings, args.prompt, args.output, args.quiet, args.image))
    if args.command == "worker":
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        return asyncio.run(work(settings, args.name, models))
    return asyncio.run(run(settings))


def cli() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
