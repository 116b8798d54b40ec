"""The runtime: the :class:`Engine` that runs a graph on a backend, its input checks, and the
plan of launches with its memory plan."""
from fastcnn.runtime.device import default_device, resolve_device
from fastcnn.runtime.engine import Engine
from fastcnn.runtime.plan import Plan, make_plan
from fastcnn.runtime.spec import InputSpec

__all__ = ["Engine", "InputSpec", "Plan", "default_device", "make_plan", "resolve_device"]
