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
from generators.models import Catalog, ModelInfo, ModelState
from generators.pipelines.backend import Backend, DiffusersBackend
from generators.pipelines.loading import load_backend
from generators.presets import describe_model
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

    @classmethod
    def from_config(cls, models: ModelsConfig, worker: WorkerConfig, only: Sequence[str] = ()) -> ModelPool:
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
        """The loaded backend for ``name``, loading (and evicting) as needed; ModelLoadError if it can't."""
        entry = self._entries[name]
        if entry.backend is not None and not entry.parked:
            self._lru.move_to_end(name)
            return entry.backend
        if entry.error and time.monotonic() - entry.failed_at < self.retry_s:
            raise ModelLoadError(entry.error)
        started = time.perf_counter()  # a switch costs the eviction (and its collection) too
        self._evict_down_to(self.max_loaded - 1, keep=name)
        before = _allocated()
        try:
            backend = self._bring_back(name, entry) if entry.parked else self._load(name, entry)
        except ModelLoadError as error:
            entry.error, entry.failed_at = str(error), time.monotonic()
            log.error("model %s could not be loaded: %s", name, error)
            raise
        if entry.config is not None and entry.config.compile != "off":
            self._warm_up(name, backend)
        entry.backend, entry.parked, entry.error = backend, False, ""
        entry.info = backend.info
        entry.load_s = time.perf_counter() - started
        entry.memory_bytes = _allocated() - before if torch.cuda.is_available() else _parameter_bytes(backend)
        self._lru[name] = None
        log.info("model %s ready in %.1f s (%.2f GB)", name, entry.load_s, entry.memory_bytes / 1e9)
        self._evict_over_memory(keep=name)
        return backend

    def _warm_up(self, name: str, backend: Backend) -> None:
        """Compile now, not on a member's job: one call per batch size at the native square shape.

        Other shapes (``--ar``) compile on their first call. The time counts as the model's load.
        """
        info = backend.info
        spec = BatchSpec(info.size, info.size, info.steps)
        sizes = (1,) if info.kind is Kind.VIDEO else self.warm_batches
        started = time.perf_counter()
        for size in sizes:
            backend.generate(spec, [Slot("warm-up", "", seed) for seed in range(size)], _ignore_steps)
        log.info("model %s warmed up for batches of %s in %.1f s", name, sizes, time.perf_counter() - started)

    def batch_limit(self, name: str, backend: Backend, spec: BatchSpec, fallback: int) -> int:
        """The most images of ``spec``'s size one call of ``name`` fits in memory (inference thread).

        Measured once per model and size, by doubling a one-step batch until memory runs out, then
        halving the gap, up to :data:`MEASURED_CAP`; ``fallback`` where nothing is measured (CPUs).
        """
        if not self.measure_batches or backend.info.kind is Kind.VIDEO:
            return fallback
        key = (name, spec.width, spec.height)
        if key not in self._batch_limits:
            started = time.perf_counter()
            self._batch_limits[key] = _largest_batch(backend, BatchSpec(spec.width, spec.height, 1))
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
            except ModelLoadError:
                pass  # logged and remembered; the other models still load

    def _load(self, name: str, entry: _Entry) -> Backend:
        if entry.config is None:
            raise ModelLoadError(f"model {name} was evicted and has no settings to load it again")
        try:
            return self.loader(entry.config, name)
        except torch.OutOfMemoryError as error:
            raise ModelLoadError(f"model {name} does not fit in the memory left for it") from error

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
        if self.evict_to == "cpu" and isinstance(backend, DiffusersBackend) and backend.info.device != "cpu":
            backend.to("cpu")
            entry.parked = True
            log.info("model %s parked in CPU memory", name)
        else:
            entry.backend = None
            log.info("model %s unloaded", name)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _ignore_steps(step: int, steps: int, latents: torch.Tensor) -> None:
    """Warm-up and measuring calls report no progress."""


#: The largest batch a measurement tries.
MEASURED_CAP = 64


def _fits(backend: Backend, spec: BatchSpec, size: int) -> bool:
    try:
        backend.generate(spec, [Slot("measuring", "", seed) for seed in range(size)], _ignore_steps)
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return False
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


def _allocated() -> int:
    return torch.cuda.memory_allocated() if torch.cuda.is_available() else 0


def _parameter_bytes(backend: Backend) -> int:
    pipe = getattr(backend, "pipe", None)
    modules = [] if pipe is None else [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
    return sum(t.numel() * t.element_size() for m in modules for t in (*m.parameters(), *m.buffers()))
