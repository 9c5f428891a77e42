"""The worker's models: loaded on first use (or at start), kept within a budget, least recent evicted.

Only the worker's inference thread calls :meth:`ModelPool.acquire`, so loading never races a pipeline
call. A model that cannot load is remembered with its reason: its jobs fail with that reason at once
(for ``retry_s``, then loading is tried again) while the other models keep serving.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from generators.config import ModelConfig, ModelsConfig, WorkerConfig
from generators.errors import ModelLoadError
from generators.health import Health
from generators.models import Catalog, ModelInfo, ModelState, describe_model
from generators.pipelines.backend import Backend, DiffusersBackend
from generators.pipelines.device import allocated, empty_cache, on_cuda, total_memory
from generators.pipelines.loading import denoiser_of, first_line, load_backend
from generators.requests import BatchSpec, Kind, Slot

log = logging.getLogger(__name__)

#: Loads one model: (its settings, the name users call it) → a backend.
Loader = Callable[[ModelConfig, str], Backend]
#: Until a load time is measured, a switch is guessed to cost this much (for queue ETAs).
GUESSED_LOAD_S = 10.0
GIB = 1024**3


@dataclass(slots=True)
class _Entry:
    config: ModelConfig | None  # None: handed in loaded, cannot be loaded again
    info: ModelInfo
    backend: Backend | None = None
    parked: bool = False  # moved to CPU memory by an eviction
    error: str = ""
    failed_at: float = 0.0
    load_s: float | None = None  # the last switch to it: evicting another model, then loading this one
    memory_bytes: int | None = None
    shapes: set[tuple[int, int]] | None = None  # a compiled model: the sizes it has compiled for


class ModelPool:
    """Named models, at most ``max_loaded`` of them loaded (and within ``max_memory_bytes``)."""

    def __init__(
        self,
        configs: Mapping[str, ModelConfig],
        *,
        image: str | None,
        video: str | None,
        max_loaded: int = 2,
        max_memory_bytes: int | None = None,
        evict_to: str = "free",
        loader: Loader = load_backend,
        retry_s: float = 60.0,
        warm_batches: tuple[int, ...] = (1,),
        measure_batches: bool = False,
        health: Health | None = None,
        must_serve: bool = False,
    ) -> None:
        self._entries = {name: _Entry(c, describe_model(c, name)) for name, c in configs.items()}
        self.image, self.video = image, video
        self.max_loaded = max_loaded
        self.max_memory_bytes = max_memory_bytes
        self.evict_to = evict_to
        self.loader = loader
        self.retry_s = retry_s
        self.warm_batches = warm_batches
        #: Whether batch sizes are measured (CUDA) rather than fixed; see :meth:`batch_limit`.
        self.measure_batches = measure_batches
        self._batch_limits: dict[tuple[str, int, int], int] = {}
        self._lru: OrderedDict[str, None] = OrderedDict()  # loaded models, least recently used first
        self._parked: OrderedDict[str, None] = OrderedDict()  # parked in CPU memory, oldest first
        #: Where a model that cannot load is reported (``/healthz``) when every model must serve.
        self.health = health
        self.must_serve = must_serve

    @classmethod
    def from_config(
        cls,
        models: ModelsConfig,
        worker: WorkerConfig,
        only: Sequence[str] = (),
        health: Health | None = None,
    ) -> ModelPool:
        """The pool the config describes (``only``: just these entries, for a worker that serves a few)."""
        entries = {name: c for name, c in models.entries.items() if not only or name in only}
        memory = worker.max_model_memory_gb
        return cls(
            entries,
            image=models.image if models.image in entries else None,
            video=models.video if models.video in entries else None,
            max_loaded=worker.max_loaded_models,
            max_memory_bytes=None if memory is None else int(memory * GIB),
            evict_to=worker.evict_to,
            warm_batches=tuple(sorted({1, worker.max_batch})),
            measure_batches=worker.measure_batch and torch.cuda.is_available(),
            health=health,
            must_serve=worker.load_models == "at_start",
        )

    @classmethod
    def serving(cls, *backends: Backend) -> ModelPool:
        """A pool of models already loaded (tests, benchmarks); the first of each kind is its default."""
        pool = cls({}, image=None, video=None, max_loaded=max(1, len(backends)))
        for backend in backends:
            pool._entries[backend.info.name] = _Entry(None, backend.info, backend)
            pool._lru[backend.info.name] = None
        kinds = [backend.info.kind.value for backend in backends]
        pool.image = next((b.info.name for b, k in zip(backends, kinds, strict=True) if k == "image"), None)
        pool.video = next((b.info.name for b, k in zip(backends, kinds, strict=True) if k == "video"), None)
        return pool

    # -- what the event loop reads -----------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        """Every model (as loaded where it is, else as described) and the defaults."""
        return Catalog(tuple(e.info for e in self._entries.values()), image=self.image, video=self.video)

    def info(self, name: str) -> ModelInfo:
        """One model's description."""
        return self._entries[name].info

    @property
    def compiled(self) -> bool:
        """Whether any model is compiled, so it must be warmed up before serving."""
        return any(e.config is not None and e.config.compile != "off" for e in self._entries.values())

    def is_loaded(self, name: str) -> bool:
        """Whether a job for ``name`` would start without loading anything."""
        entry = self._entries.get(name)
        return entry is not None and entry.backend is not None and not entry.parked

    def load_estimate(self, name: str) -> float:
        """Seconds a job for ``name`` waits for its model: 0 when loaded, else the last load (or a guess)."""
        if self.is_loaded(name):
            return 0.0
        entry = self._entries[name]
        return entry.load_s if entry.load_s is not None else GUESSED_LOAD_S

    def size_hint(self, name: str) -> str:
        """How big loading ``name`` is, as far as known before loading it: the last load's or the folder's."""
        entry = self._entries[name]
        size = entry.memory_bytes
        folder = entry.config.path if entry.config is not None else None
        if size is None and folder is not None and folder.is_dir():
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        return f"{size / 1e9:.2f} GB" if size else ""

    def states(self) -> list[ModelState]:
        """How each model is doing, for /info, /metrics and the worker's heartbeat."""
        return [
            ModelState(name, self.is_loaded(name), e.error, e.load_s, e.memory_bytes)
            for name, e in self._entries.items()
        ]

    # -- the inference thread ----------------------------------------------------------------------

    def acquire(self, name: str) -> Backend:
        """The loaded backend for ``name``, loading (and evicting) as needed; ModelLoadError if it can't.

        Any failure while loading, bringing back or warming up (not only the library's load error) is
        remembered with its reason, so the model's jobs fail at once until ``retry_s`` has passed, and
        the other models keep serving.
        """
        entry = self._entries[name]
        if entry.backend is not None and not entry.parked:
            self._lru.move_to_end(name)
            return entry.backend
        if entry.error and time.monotonic() - entry.failed_at < self.retry_s:
            raise ModelLoadError(entry.error)
        try:
            backend = self._switch_to(name, entry)
        except Exception as error:
            reason = (
                error
                if isinstance(error, ModelLoadError)
                else ModelLoadError(
                    f"model {name} could not be loaded: {type(error).__name__}: {first_line(error)}"
                )
            )
            entry.error, entry.failed_at = str(reason), time.monotonic()
            log.error("%s", reason, exc_info=reason is not error)
            self._report(name, str(reason))
            if reason is error:
                raise
            raise reason from error
        self._report(name, None)
        return backend

    def _switch_to(self, name: str, entry: _Entry) -> Backend:
        started = time.perf_counter()  # a switch costs the eviction (and its collection) too
        self._refuse_oversize(name, entry)
        self._evict_down_to(self.max_loaded - 1, keep=name)
        device = entry.info.device
        before = allocated(device) if _gpu(device) else 0
        backend = self._bring_back(name, entry) if entry.parked else self._load(name, entry)
        self._parked.pop(name, None)
        if entry.config is not None and entry.config.compile != "off":
            self._warm_up(name, backend)
            entry.shapes = {(backend.info.size, backend.info.size)}
        entry.backend, entry.parked, entry.error = backend, False, ""
        entry.info = backend.info
        entry.load_s = time.perf_counter() - started
        on_gpu = _gpu(backend.info.device)
        entry.memory_bytes = allocated(backend.info.device) - before if on_gpu else _parameter_bytes(backend)
        self._lru[name] = None
        self._batch_limits.clear()  # what fits in a call changes with what else is loaded
        log.info("model %s ready in %.1f s (%.2f GB)", name, entry.load_s, entry.memory_bytes / 1e9)
        self._evict_over_memory(keep=name)
        return backend

    def _report(self, name: str, problem: str | None) -> None:
        if self.health is not None and (self.must_serve or problem is None):
            self.health.report(f"model {name}", problem)

    def _refuse_oversize(self, name: str, entry: _Entry) -> None:
        """Fail before evicting anything when the model is known to be bigger than its GPU's memory."""
        device = entry.info.device
        total = total_memory(device) if _gpu(device) else None
        if total is not None and entry.memory_bytes is not None and entry.memory_bytes > total:
            raise ModelLoadError(
                f"model {name} needs {entry.memory_bytes / 1e9:.1f} GB, more than {device} has "
                f"({total / 1e9:.1f} GB): set offload or quantize on its entry"
            )

    def _warm_up(self, name: str, backend: Backend) -> None:
        """Compile now, not on a member's job: one call per batch size at the native square shape.

        Other shapes (``--ar``) compile on their first call, which has no time limit (see the worker).
        A compile that fails (no C compiler for Triton, an unsupported operator) falls back to eager
        with one WARNING: a slower model beats no model.
        """
        info = backend.info
        spec = BatchSpec(
            info.size, info.size, info.steps, frames=info.frames if info.kind is Kind.VIDEO else 0
        )
        sizes = (1,) if info.kind is Kind.VIDEO else self.warm_batches
        started = time.perf_counter()
        try:
            for size in sizes:
                backend.generate(spec, [Slot("warm-up", "", seed) for seed in range(size)], _ignore_steps)
        except torch.OutOfMemoryError:
            raise
        except Exception as error:
            if not _uncompile(backend):
                raise
            log.warning(
                "model %s: torch.compile failed (%s: %s); it runs uncompiled",
                name,
                type(error).__name__,
                first_line(error),
            )
            return
        log.info("model %s warmed up for batches of %s in %.1f s", name, sizes, time.perf_counter() - started)

    def compiles_for(self, name: str, width: int, height: int) -> bool:
        """Whether ``name``'s next call at this size compiles it first (then the size counts as seen)."""
        entry = self._entries.get(name)
        if entry is None or entry.shapes is None or (width, height) in entry.shapes:
            return False
        entry.shapes.add((width, height))
        return True

    def lower_limit(self, name: str, spec: BatchSpec, failed: int) -> None:
        """A real call of ``failed`` images ran out of memory: later calls of that size stay below it."""
        key = (name, spec.width, spec.height)
        if failed > 1 and self._batch_limits.get(key, failed) >= failed:
            self._batch_limits[key] = max(1, failed // 2)
            log.info(
                "model %s: calls of %dx%d now take at most %d", name, spec.width, spec.height, failed // 2
            )

    def batch_limit(self, name: str, backend: Backend, spec: BatchSpec, fallback: int) -> int:
        """The most images of ``spec``'s size one call of ``name`` fits in memory (inference thread).

        Measured once per model and size, by doubling a one-step batch until memory runs out, then
        halving the gap, up to :data:`MEASURED_CAP`; ``fallback`` where nothing is measured (CPUs).
        """
        if not self.measure_batches or not _gpu(backend.info.device):
            return fallback
        if backend.info.kind is Kind.VIDEO:
            return 1  # clips are not measured: one per call, whatever a take gathered
        key = (name, spec.width, spec.height)
        if key not in self._batch_limits:
            started = time.perf_counter()
            try:
                fits = _largest_batch(backend, BatchSpec(spec.width, spec.height, 1))
            except Exception as error:
                log.warning(
                    "model %s: could not measure its batch size (%s); using %d", name, error, fallback
                )
                fits = fallback
            # The edge is where the measuring call just fitted: real prompts and fragmentation need room.
            self._batch_limits[key] = max(1, fits * 3 // 4) if fits > 1 else 1
            log.info(
                "model %s fits %d images of %dx%d per call (measured in %.1f s)",
                name,
                self._batch_limits[key],
                spec.width,
                spec.height,
                time.perf_counter() - started,
            )
        return self._batch_limits[key]

    def load_all(self) -> None:
        """Load every model up to the budget, defaults first (``worker.load_models: at_start``)."""
        first = [n for n in (self.image, self.video) if n is not None]
        for name in [*first, *(n for n in self._entries if n not in first)][: self.max_loaded]:
            try:
                self.acquire(name)
            except Exception:  # noqa: S110  (logged and remembered by acquire; the others still load)
                pass

    def _load(self, name: str, entry: _Entry) -> Backend:
        if entry.config is None:
            raise ModelLoadError(f"model {name} was evicted and has no settings to load it again")
        out_of_memory = False
        try:
            return self.loader(entry.config, name)
        except torch.OutOfMemoryError:
            out_of_memory = True  # raised below, once this block has let go of the half-loaded weights
        if out_of_memory:
            gc.collect()
            if _gpu(entry.info.device):
                empty_cache(entry.info.device)
        raise ModelLoadError(f"model {name} does not fit in the memory left for it")

    def _bring_back(self, name: str, entry: _Entry) -> Backend:
        backend = entry.backend
        if not isinstance(backend, DiffusersBackend):  # only those are parked
            raise ModelLoadError(f"model {name} was parked but cannot be moved back")
        backend.to(entry.info.device)
        return backend

    def _evict_down_to(self, count: int, keep: str) -> None:
        while len(self._lru) > max(0, count) and (victim := self._victim(keep)) is not None:
            self._evict(victim)

    def _evict_over_memory(self, keep: str) -> None:
        if self.max_memory_bytes is None:
            return
        while sum(self._entries[n].memory_bytes or 0 for n in self._lru) > self.max_memory_bytes:
            victim = self._victim(keep)
            if victim is None:
                log.warning("model %s alone is over worker.max_model_memory_gb", keep)
                return
            self._evict(victim)

    def _victim(self, keep: str) -> str | None:
        """The least recently used model that can be loaded again (not ``keep``)."""
        return next((n for n in self._lru if n != keep and self._entries[n].config is not None), None)

    def _evict(self, name: str) -> None:
        entry = self._entries[name]
        del self._lru[name]
        backend = entry.backend
        if entry.shapes is not None:
            self._drop_compiled(name, backend)
        if self.evict_to == "cpu" and isinstance(backend, DiffusersBackend) and backend.info.device != "cpu":
            backend.to("cpu")
            entry.parked = True
            self._parked[name] = None
            log.info("model %s parked in CPU memory", name)
            self._free_parked_over(self.max_loaded)
        else:
            entry.backend = None
            log.info("model %s unloaded", name)
        self._batch_limits.clear()
        gc.collect()
        if _gpu(entry.info.device):
            empty_cache(entry.info.device)

    def _drop_compiled(self, name: str, backend: Backend | None) -> None:
        """Free an evicted compiled model's compiled code and CUDA graphs, which ``del`` would leave.

        torch's compile caches are shared, so resetting them makes every other compiled model compile
        again on its next call at each size (which then has no time limit, as at load).
        """
        if backend is not None:
            _uncompile(backend)
        torch.compiler.reset()
        for other in self._entries.values():
            if other.shapes is not None:
                other.shapes = set()
        self._entries[name].shapes = None

    def _free_parked_over(self, count: int) -> None:
        """Keep at most ``count`` models parked in CPU memory: host RAM is not endless either."""
        while len(self._parked) > count:
            oldest, _ = self._parked.popitem(last=False)
            entry = self._entries[oldest]
            entry.backend, entry.parked = None, False
            log.info("model %s freed from CPU memory", oldest)


def _ignore_steps(step: int, steps: int, latents: torch.Tensor) -> None:
    """Warm-up and measuring calls report no progress."""


#: The largest batch a measurement tries.
MEASURED_CAP = 64


def _fits(backend: Backend, spec: BatchSpec, size: int) -> bool:
    out_of_memory = False
    try:
        backend.generate(spec, [Slot("measuring", "", seed) for seed in range(size)], _ignore_steps)
    except torch.OutOfMemoryError:
        out_of_memory = True  # freed below, once this block has let go of the failed call's frames
    if out_of_memory:
        gc.collect()
        if _gpu(backend.info.device):
            empty_cache(backend.info.device)
    return not out_of_memory


def _uncompile(backend: Backend) -> bool:
    """Put a compiled denoiser's eager module back; False when the backend holds none."""
    pipe = getattr(backend, "pipe", None)
    family = getattr(backend, "family", None)
    if pipe is None or family is None:
        return False
    attr, module = denoiser_of(pipe, family)
    original = getattr(module, "_orig_mod", None)
    if original is None:
        return False
    setattr(pipe, attr, original)
    return True


def _largest_batch(backend: Backend, spec: BatchSpec) -> int:
    """Double until a batch does not fit (or the cap), then search between the last fit and the miss."""
    fits, size = 0, 1
    while size <= MEASURED_CAP and _fits(backend, spec, size):
        fits, size = size, size * 2
    misses = min(size, MEASURED_CAP + 1)
    while misses - fits > 1:
        middle = (fits + misses) // 2
        fits, misses = (middle, misses) if _fits(backend, spec, middle) else (fits, middle)
    return max(1, fits)


def _parameter_bytes(backend: Backend) -> int:
    pipe = getattr(backend, "pipe", None)
    modules = [] if pipe is None else [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
    return sum(t.numel() * t.element_size() for m in modules for t in (*m.parameters(), *m.buffers()))


def _gpu(device: str) -> bool:
    """Whether a model's device (as ``ModelInfo`` names it; "not loaded" before a load) is a CUDA one."""
    try:
        return on_cuda(device)
    except (RuntimeError, ValueError):
        return False
