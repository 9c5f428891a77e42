"""Model families behind one interface: presets, the tiny built-ins, loading and the backend."""

from generators.pipelines import quiet  # noqa: F401  (first: silences the libraries before they load)
from generators.pipelines.backend import Backend, BatchSpec, DiffusersBackend, ModelInfo, Slot, StepCallback
from generators.pipelines.loading import describe_model, load_backend

__all__ = [
    "Backend",
    "BatchSpec",
    "DiffusersBackend",
    "ModelInfo",
    "Slot",
    "StepCallback",
    "describe_model",
    "load_backend",
]
