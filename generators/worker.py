"""The one worker that owns the pipelines: fair batches in, progress events and result files out.

Inference runs on a single dedicated thread (a pipeline is not thread-safe) and rendering on another, so
the event loop only schedules: Discord's gateway heartbeats must never wait for a denoising step. The
next batch starts denoising while the previous one is still being encoded. Models are loaded and
evicted on that same inference thread (``generators.pool``); a batch only ever holds jobs of one model.
A call that runs past ``worker.max_job_s`` per job in it is stopped at its next step, as a cancel is,
and its jobs fail saying so: the work cap (``generators.models``) bounds what a job may ask for, this
bounds what it may take on a device slower than the cap assumed.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import gc
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from PIL import Image

from generators.config import LimitsConfig, RenderConfig, WorkerConfig
from generators.errors import ModelLoadError, Unsupported
from generators.grammar import format_request
from generators.models import ModelInfo
from generators.pipelines.backend import Backend
from generators.pool import MEASURED_CAP, ModelPool
from generators.queue import JobQueue, WaitingLine
from generators.render import png_bytes
from generators.requests import (
    BatchSpec,
    Cancelled,
    Failed,
    Finished,
    Job,
    Kind,
    Phase,
    Preview,
    Progress,
    Queued,
    Slot,
    Started,
    Step,
)
from generators.results import render_job
from generators.safety.classifier import Classifier
from generators.sources import open_source, sources_folder

log = logging.getLogger(__name__)

OOM_REASON = "the GPU ran out of memory even for a single image: try a smaller --ar or fewer --steps"
INTERNAL_REASON = "generation failed on our side; the error was logged for the admins"
TIME_REASON = "it took longer than the {limit:g} s limit for one job: try fewer --n or --steps"
SOURCE_GONE_REASON = "the picture to remix is no longer here (it expired): send it again"


class WorkerState(enum.Enum):
    """Where the worker is in its life: RUNNING and TAKING alternate, then it only moves down the list."""

    UNOPENED = 1  # built, not started
    WARMING = 2  # loading (and compiling) models before the first job: not ready for traffic yet
    RUNNING = 3  # a batch is loading its model, denoising or going to the encoder
    TAKING = 4  # waiting in queue.take(), where cancelling loses nothing
    CLOSING = 5  # stop() was called: the batch in hand may finish, no new one is taken
    ABANDONED = 6  # the batch outlived its grace: the inference thread stops at its next step
    CLOSED = 7  # threads released


_STOPPING = (WorkerState.CLOSING, WorkerState.ABANDONED, WorkerState.CLOSED)
#: A batch still running in these states is dropped at its next step (the store says RUNNING).
_ABANDONING = (WorkerState.ABANDONED, WorkerState.CLOSED)


class _Interrupted(Exception):
    """Raised from the step callback to stop a pipeline call whose jobs were all cancelled."""


class _OutOfTime(Exception):
    """Raised from the step callback to stop a pipeline call that ran past its jobs' time limit."""


@dataclass(frozen=True, slots=True)
class Work:
    """How a job runs in a call: the batch settings it shares and one slot per image (or clip)."""

    spec: BatchSpec
    slots: tuple[Slot, ...]


@dataclass(frozen=True, slots=True)
class _Item:
    job_id: str
    slot: Slot


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str


_Outcome = list[Image.Image] | _Failure | None  # None: cancelled
#: Reports a finished step to the jobs still wanted: (job id → its first slot in the call, step, total,
#: latents).
_Report = Callable[[dict[str, int], int, int, torch.Tensor], None]


class StepRates:
    """Recent seconds per (step × image), per batch shape, for queue ETAs."""

    def __init__(self, smoothing: float = 0.3) -> None:
        self.smoothing = smoothing
        self._rates: dict[Hashable, float] = {}

    def record(self, key: Hashable, seconds: float, steps: int, images: int) -> None:
        """Fold one measured pipeline call into the average for its shape."""
        rate = seconds / max(1, steps * images)
        old = self._rates.get(key)
        self._rates[key] = rate if old is None else old + self.smoothing * (rate - old)

    def estimate(self, key: Hashable, steps: int, images: int) -> float | None:
        """Seconds a call of this shape should take; ``None`` before anything was measured."""
        rate = self._rates.get(key)
        if rate is None and self._rates:
            rate = max(self._rates.values())
        return None if rate is None else rate * steps * images


class GenerationWorker:
    """Drains the queue through the pool's models (or one backend); use as ``async with``."""

    def __init__(
        self,
        models: ModelPool | Backend,
        queue: JobQueue,
        *,
        config: WorkerConfig,
        limits: LimitsConfig,
        render: RenderConfig,
        classifier: Classifier | None = None,
    ) -> None:
        #: Judges every result before it leaves the worker (``generators.safety``); None: off.
        self.classifier = classifier
        self.models = models if isinstance(models, ModelPool) else ModelPool.serving(models)
        self.queue = queue
        #: The in-process queue, which this worker fills and ranks itself; None on Redis.
        self.line = queue if isinstance(queue, WaitingLine) else None
        self.config = config
        self.limits = limits
        self.render = render
        self.rates = StepRates()
        #: Every job's progress, in order: (job id, event). The job service drains it.
        self.events: asyncio.Queue[tuple[str, Progress]] = asyncio.Queue()
        self._gpu = ThreadPoolExecutor(1, thread_name_prefix="memebot-gpu")
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="memebot-render")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._renders: set[asyncio.Task[None]] = set()
        self._running: dict[str, Job] = {}
        self._cancel: set[str] = set()  # cancels asked for while running
        self._stopped: set[str] = set()  # running jobs already told they are cancelled
        self._positions: dict[str, int] = {}
        self._busy_until: float = 0.0
        #: Where remixes' pictures wait (``generators.sources``).
        self.sources = sources_folder(config.results_dir)
        self.state = WorkerState.UNOPENED

    async def __aenter__(self) -> GenerationWorker:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the queue side ---------------------------------------------------------------------------

    def submit(self, job: Job, *, force: bool = False) -> int:
        """Queue a job (``force`` skips the caps, for recovered jobs); return its position."""
        if self.line is None:
            raise RuntimeError("this worker takes its jobs from Redis: bots queue them there")
        position = self.line.put(job, force=force)
        self.publish_positions()
        return position

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job now, or a running one at its next step; False when it isn't either."""
        if self.line is not None and self.line.remove(job_id) is not None:
            self._positions.pop(job_id, None)
            self._emit(job_id, Cancelled())
            self.publish_positions()
            return True
        if job_id in self._running and job_id not in self._cancel:
            self._cancel.add(job_id)
            return True
        return False

    def publish_positions(self) -> None:
        """Tell every waiting job whose place in line moved where it is now and when it should start."""
        if self.line is None:
            return  # on Redis the bots tell positions: they see the whole shared order
        eta: float | None = max(0.0, self._busy_until - time.monotonic())
        order = self.line.order()
        waiting = {job.id for job in order}
        for job_id in [j for j in self._positions if j not in waiting]:
            del self._positions[job_id]
        loaded = {state.name for state in self.models.states() if state.loaded}
        for position, job in enumerate(order):
            model = self.model_of(job).name
            if eta is not None and model not in loaded:  # this job waits for its model to load
                eta += self.models.load_estimate(model)
                loaded = {model}
            if self._positions.get(job.id) != position:
                self._positions[job.id] = position
                # Next in line on an idle worker starts now; its model's load shows as its own phase,
                # rather than as a guessed wait before anything has been measured.
                shown = 0.0 if position == 0 and not self._running else eta
                self._emit(job.id, Queued(position, None if shown is None else round(shown, 1)))
            estimate = self._estimate(job)
            eta = None if eta is None or estimate is None else eta + estimate

    @property
    def busy(self) -> int:
        """How many jobs are in the pipeline (or being encoded) now."""
        return len(self._running)

    # -- planning ---------------------------------------------------------------------------------

    def model_of(self, job: Job) -> ModelInfo:
        """The model ``job`` runs on (the default for its kind when it names none)."""
        # Not resolve(): a queued job was checked when it was asked for, and the worker must not refuse it.
        return self.models.info(job.request.model or self.models.catalog.model_for(job.request).name)

    def plan(self, job: Job) -> Work:
        """The job's plan (made when it was accepted, or now from its model) and one seeded slot per image."""
        request = job.request
        plan = job.plan or self.model_of(job).plan(request, self.limits.max_side)
        spec = BatchSpec(
            width=plan.width,
            height=plan.height,
            steps=plan.steps,
            strength=plan.strength,
            denoising=plan.denoising_steps,
            true_cfg=plan.true_cfg,
            frames=plan.frames,
            picture=plan.picture,
        )
        seed = request.seed or 0
        count = 1 if request.kind is Kind.VIDEO else request.n
        slots = tuple(
            Slot(request.prompt, request.negative, (seed + i) % 2**32, request.picture) for i in range(count)
        )
        return Work(spec, slots)

    def batch_key(self, job: Job) -> Hashable:
        """Jobs with equal keys share one pipeline call: same model and the same batch settings."""
        return (self.model_of(job).name, self.plan(job).spec)

    def images_of(self, job: Job) -> int:
        """How much of a batch a job takes: its images, or a clip's frames."""
        if job.request.kind is Kind.VIDEO:
            return self.plan(job).spec.frames or self.model_of(job).frames
        return job.request.n

    def ready(self, job: Job) -> bool:
        """Whether ``job`` can start without loading a model."""
        return self.models.is_loaded(self.model_of(job).name)

    def _estimate(self, job: Job) -> float | None:
        spec = self.plan(job).spec
        return self.rates.estimate(self.batch_key(job), spec.denoising_steps, self.images_of(job))

    # -- the loop ---------------------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the worker was started on."""
        if self._loop is None:
            raise RuntimeError("the worker has not been started")
        return self._loop

    def start(self) -> None:
        """Start draining the queue (after loading and warming the models, when they must be first)."""
        self._loop = asyncio.get_running_loop()
        warm = self.config.load_models == "at_start" or self.models.compiled
        self.state = WorkerState.WARMING if warm else WorkerState.RUNNING
        self._task = asyncio.create_task(self._run(), name="memebot-worker")

    @property
    def warming(self) -> bool:
        """Whether the models are still being loaded and compiled before the first job (/healthz)."""
        return self.state is WorkerState.WARMING

    async def stop(self, grace: float = 30.0) -> None:
        """Stop taking jobs; let the running batch finish (within ``grace`` seconds), then release threads.

        A batch still running at the deadline is abandoned: its jobs stay RUNNING in the store, so the
        next start queues them again.
        """
        taking = self.state is WorkerState.TAKING
        self.state = WorkerState.CLOSING
        if self._task is not None:
            if taking:
                self._task.cancel()
            done, _ = await asyncio.wait([self._task], timeout=grace)
            if not done:
                self.state = WorkerState.ABANDONED
                await asyncio.wait([self._task], timeout=grace)
        if self._renders:
            await asyncio.wait(self._renders, timeout=grace)
        self._gpu.shutdown(wait=False, cancel_futures=True)
        self._encoder.shutdown(wait=False, cancel_futures=True)
        self.state = WorkerState.CLOSED

    async def _run(self) -> None:
        if self.state is WorkerState.WARMING:
            # A compiled model is warmed up here too: no member's job pays its compilation.
            await self.loop.run_in_executor(self._gpu, self.models.load_all)
            if self.state is WorkerState.WARMING:
                self.state = WorkerState.RUNNING
        max_images = self._max_images()
        while self.state not in _STOPPING:
            self.state = WorkerState.TAKING
            jobs = await self.queue.take(self.batch_key, self.images_of, max_images, self.ready)
            if self.state is WorkerState.TAKING:  # a stop() now cancels the batch at its first await
                self.state = WorkerState.RUNNING
            for job in jobs:
                self._running[job.id] = job
                self._positions.pop(job.id, None)
            await self._run_batch(jobs)

    async def _run_batch(self, jobs: list[Job]) -> None:
        model = self.model_of(jobs[0]).name
        plans = {job.id: self.plan(job) for job in jobs}
        spec = plans[jobs[0].id].spec
        pictures: dict[str, Image.Image] = {}
        if spec.from_pictures:
            pictures = await asyncio.to_thread(self._pictures, jobs, spec)
            for job in [job for job in jobs if job.request.picture not in pictures]:
                self._release(job.id, Failed(SOURCE_GONE_REASON))
                jobs.remove(job)
            if not jobs:
                return
        items = [_Item(job.id, slot) for job in jobs for slot in plans[job.id].slots]
        for job in jobs:
            self._emit(job.id, Started(batch_size=len(items)))
        started = time.monotonic()
        estimate = self.rates.estimate(self.batch_key(jobs[0]), spec.denoising_steps, len(items))
        self._busy_until = started + self.models.load_estimate(model) + (estimate or 0.0)
        self.publish_positions()
        if not self.models.is_loaded(model):
            size = await asyncio.to_thread(self.models.size_hint, model)  # may walk a model folder
            for job in jobs:
                self._emit(job.id, Phase("loading", f"model {model}" + (f" ({size})" if size else "")))
        backend = await self._acquire(model, jobs)
        if backend is None:
            return
        limit = functools.partial(self.models.batch_limit, model, backend, spec, self.config.max_batch)
        per_call = await self.loop.run_in_executor(self._gpu, limit)  # measured once per size (CUDA)
        chunks = [items[i : i + per_call] for i in range(0, len(items), per_call)]
        outcomes: dict[_Item, _Outcome] = {}
        deadline = self._deadline(len(jobs), model, spec)
        for index, chunk in enumerate(chunks):
            progress = self._progress(backend, index, len(chunks))
            call = functools.partial(self._call, backend, spec, chunk, progress, deadline, pictures)
            outcomes.update(await self.loop.run_in_executor(self._gpu, call))
        self._finish_batch(jobs, plans, outcomes, time.monotonic() - started)

    async def _acquire(self, model: str, jobs: Sequence[Job]) -> Backend | None:
        """The model's backend, loading it on the inference thread; None when it failed its jobs.

        The jobs count as running while their model loads: a load is part of their time. Whatever goes
        wrong while loading (the library's own error or any other) fails these jobs with the reason and
        leaves the worker serving the other models.
        """
        try:
            return await self.loop.run_in_executor(self._gpu, self.models.acquire, model)
        except ModelLoadError as error:
            named = f"model {model}" in str(error)  # the loaders' messages mostly name it already
            reason = str(error) if named else f"the model {model} could not be loaded: {error}"
        except Exception as error:  # pool.acquire wraps load errors; this is the last line of defence
            log.exception("loading model %s failed", model)
            reason = f"the model {model} could not be loaded: {type(error).__name__}: {error}"
        for job in jobs:
            self._release(job.id, Failed(reason, True))
        return None

    def _pictures(self, jobs: Sequence[Job], spec: BatchSpec) -> dict[str, Image.Image]:
        """The remixed jobs' pictures at the call's size, by digest (a missing one is left out)."""
        pictures = {}
        for digest in {job.request.picture for job in jobs}:
            picture = open_source(self.sources, digest, spec.width, spec.height)
            if picture is not None:
                pictures[digest] = picture
            else:
                log.warning("the picture %s… to remix is gone", digest[:12])
        return pictures

    def _max_images(self) -> int:
        """Most images one take may gather: the calls then split them by what each model fits."""
        if not self.config.batching:
            return 1
        return MEASURED_CAP if self.models.measure_batches else self.config.max_batch

    def _deadline(self, jobs: int, model: str, spec: BatchSpec) -> float | None:
        """When a call of ``jobs`` jobs must stop: each job brings ``max_job_s`` (0: never).

        The clock starts once the model is loaded (a load is not the request's fault) and runs across
        every chunk and retry of the batch, so splitting a batch does not extend it. A compiled model's
        first call at a new size compiles it (minutes with max-autotune): that call has no deadline,
        since the wait is the model's, not the request's.
        """
        limit = self.config.max_job_s
        if not limit or self.models.compiles_for(model, spec.width, spec.height):
            return None
        return time.monotonic() + limit * jobs

    def _finish_batch(
        self, jobs: list[Job], plans: dict[str, Work], outcomes: dict[_Item, _Outcome], elapsed: float
    ) -> None:
        if self.state in _ABANDONING:
            return  # shutting down: the store still says RUNNING, so the next start runs them again
        for job in jobs:
            job_outcomes = [outcomes[_Item(job.id, slot)] for slot in plans[job.id].slots]
            failure = next((o for o in job_outcomes if isinstance(o, _Failure)), None)
            if job.id in self._cancel or None in job_outcomes:
                self._release(job.id, Cancelled())
            elif failure is not None:
                self._release(job.id, Failed(failure.reason))
            else:
                frames = [o for o in job_outcomes if isinstance(o, list)]
                task = asyncio.create_task(self._render(job, plans[job.id], frames, elapsed))
                self._renders.add(task)
                task.add_done_callback(self._renders.discard)

    async def _render(self, job: Job, plan: Work, frames: list[list[Image.Image]], elapsed: float) -> None:
        self._emit(job.id, Phase("encoding", "clip" if job.request.kind is Kind.VIDEO else "grid"))
        try:  # anything that breaks here fails the job: it must never stay "running"
            work = functools.partial(
                render_job,
                job,
                frames,
                spec=plan.spec,
                seeds=[slot.seed for slot in plan.slots],
                metadata=self._metadata(job, plan),
                folder=self.config.results_dir,
                config=self.render,
                fps=self.model_of(job).fps,
                elapsed=elapsed,
                classifier=self.classifier,
            )
            result = await self.loop.run_in_executor(self._encoder, work)
        except Exception:
            log.exception("rendering job %s failed", job.id, extra={"job_id": job.id})
            self._release(job.id, Failed(INTERNAL_REASON))
            return
        self._release(job.id, Finished(result))

    def _metadata(self, job: Job, plan: Work) -> dict[str, str]:
        request = job.request
        metadata = {
            "prompt": request.prompt,
            "negative": request.negative,
            "seed": str(plan.slots[0].seed),
            "steps": str(plan.spec.steps),
            "size": f"{plan.spec.width}x{plan.spec.height}",
            "model": self.model_of(job).name,
            "job": job.id,
            "command": format_request(job.request, self.limits),
        }
        if request.source is not None:
            source = request.source
            metadata["source"] = f"job {source.job}" if source.job else f"sha256:{source.digest}"
            metadata["source_sha256"] = source.digest
            if request.strength is not None:  # a remix; an animation keeps its picture as frame one
                metadata["strength"] = f"{request.strength:g}"
            metadata["denoising_steps"] = str(plan.spec.denoising_steps)
        return metadata

    def _release(self, job_id: str, event: Progress) -> None:
        """Send a job's one terminal event (Cancelled wins if it was asked for) and forget it."""
        self._running.pop(job_id, None)
        if job_id in self._stopped:
            self._stopped.discard(job_id)
            self._cancel.discard(job_id)
            return
        if job_id in self._cancel:
            self._cancel.discard(job_id)
            event = Cancelled()
        self._emit(job_id, event)

    # -- the inference thread ---------------------------------------------------------------------

    def _progress(self, backend: Backend, chunk: int, chunks: int) -> _Report:
        """Step events for one call of a batch split into ``chunks`` calls (``chunk`` counts from 0).

        Each call counts its own steps (the total the pipeline really runs, never past it), naming
        its part when there are several; decoding is announced after each call's last step.
        """

        def report(first_slots: dict[str, int], step: int, total: int, latents: torch.Tensor) -> None:
            for job_id in first_slots:
                self._threadsafe(job_id, Step(step, total, part=chunk + 1, parts=chunks))
                if step == total:  # the pipeline decodes the latents next, which takes a while
                    self._threadsafe(job_id, Phase("decoding"))
            every = self.config.preview_every
            if every and step % every == 0 and step < total:
                for job_id, index in first_slots.items():
                    image = backend.preview(latents, index)
                    if image is not None:
                        self._threadsafe(job_id, Preview(png_bytes(image), step))

        return report

    def _emit(self, job_id: str, event: Progress) -> None:
        self.events.put_nowait((job_id, event))

    def _threadsafe(self, job_id: str, event: Progress) -> None:
        self.loop.call_soon_threadsafe(self._emit, job_id, event)

    def _call(
        self,
        backend: Backend,
        spec: BatchSpec,
        items: Sequence[_Item],
        progress: _Report,
        deadline: float | None = None,
        pictures: dict[str, Image.Image] | None = None,
    ) -> dict[_Item, _Outcome]:
        """One pipeline call (on the inference thread), split on out-of-memory or a failing job.

        ``pictures``: a remix call's start pictures by digest, each slot taking its own.
        """
        first_slots: dict[str, int] = {}
        for index, item in enumerate(items):
            first_slots.setdefault(item.job_id, index)
        job_ids = list(first_slots)

        def on_step(step: int, total: int, latents: torch.Tensor) -> None:
            for job_id in self._cancel.intersection(first_slots).difference(self._stopped):
                self._stopped.add(job_id)
                self._threadsafe(job_id, Cancelled())
            live = {job_id: i for job_id, i in first_slots.items() if job_id not in self._stopped}
            if self.state in _ABANDONING or not live:
                raise _Interrupted
            if deadline is not None and time.monotonic() > deadline:
                raise _OutOfTime
            progress(live, step, total, latents)

        started = time.perf_counter()
        slots = [item.slot for item in items]
        starts = [pictures[slot.source] for slot in slots] if pictures else []
        out_of_memory = False
        try:
            outputs = backend.generate(spec, slots, on_step, starts)
        except _Interrupted:
            return dict.fromkeys(items)
        except _OutOfTime:
            return self._out_of_time(items, job_ids)
        except torch.OutOfMemoryError:
            # Retried below, outside this block: here the error's traceback still holds the failed
            # call's frames and with them its activations, which no cache flush could then free.
            out_of_memory = True
        except Unsupported as error:
            return dict.fromkeys(items, _Failure(str(error)))
        except Exception:
            log.exception(
                "pipeline call failed for jobs %s", ", ".join(job_ids), extra={"job_id": ",".join(job_ids)}
            )
            return self._each_alone(backend, spec, items, progress, deadline, pictures)
        if out_of_memory:
            return self._split_after_oom(backend, spec, items, progress, deadline, pictures)
        key = (backend.info.name, spec)
        # A clip counts its frames, as in images_of().
        units = sum(len(frames) for frames in outputs)
        self.rates.record(key, time.perf_counter() - started, spec.denoising_steps, units)
        return dict(zip(items, outputs, strict=True))

    def _each_alone(
        self,
        backend: Backend,
        spec: BatchSpec,
        items: Sequence[_Item],
        progress: _Report,
        deadline: float | None,
        pictures: dict[str, Image.Image] | None,
    ) -> dict[_Item, _Outcome]:
        """After a call failed: run each job alone so the one that breaks it fails by itself."""
        job_ids = list(dict.fromkeys(item.job_id for item in items))
        if len(job_ids) == 1:
            return dict.fromkeys(items, _Failure(INTERNAL_REASON))
        outcomes: dict[_Item, _Outcome] = {}
        for job_id in job_ids:
            alone = [i for i in items if i.job_id == job_id]
            outcomes |= self._call(backend, spec, alone, progress, deadline, pictures)
        return outcomes

    def _out_of_time(self, items: Sequence[_Item], job_ids: list[str]) -> dict[_Item, _Outcome]:
        limit = self.config.max_job_s
        log.warning(
            "jobs %s ran past the %g s limit per job and were stopped",
            ", ".join(job_ids),
            limit,
            extra={"job_id": ",".join(job_ids)},
        )
        return dict.fromkeys(items, _Failure(TIME_REASON.format(limit=limit)))

    def _split_after_oom(
        self,
        backend: Backend,
        spec: BatchSpec,
        items: Sequence[_Item],
        progress: _Report,
        deadline: float | None,
        pictures: dict[str, Image.Image] | None,
    ) -> dict[_Item, _Outcome]:
        gc.collect()  # the failed call's frames may sit in reference cycles
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.models.lower_limit(backend.info.name, spec, len(items))
        if len(items) == 1:
            log.warning(
                "out of memory for a single image of job %s",
                items[0].job_id,
                extra={"job_id": items[0].job_id},
            )
            return {items[0]: _Failure(OOM_REASON)}
        half = len(items) // 2
        log.warning("out of memory for %d images: retrying as %d + %d", len(items), half, len(items) - half)
        return self._call(backend, spec, items[:half], progress, deadline, pictures) | self._call(
            backend, spec, items[half:], progress, deadline, pictures
        )
