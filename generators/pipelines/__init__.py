"""Model families behind one interface: the tiny built-ins, loading and the backend."""

from generators.pipelines import quiet  # noqa: F401  (first: silences the libraries before they load)
from generators.pipelines.backend import Backend, DiffusersBackend, StepCallback
from generators.pipelines.loading import load_backend
from generators.requests import BatchSpec, Slot

__all__ = [
    "Backend",
    "BatchSpec",
    "DiffusersBackend",
    "Slot",
    "StepCallback",
    "load_backend",
]
