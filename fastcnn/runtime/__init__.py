"""The runtime: the :class:`Engine` that runs a graph on a backend, and its input checks."""
from fastcnn.runtime.device import default_device, resolve_device
from fastcnn.runtime.engine import Engine
from fastcnn.runtime.spec import InputSpec

__all__ = ["Engine", "InputSpec", "default_device", "resolve_device"]
