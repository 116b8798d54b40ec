"""fastcnn as an ONNX backend (:class:`onnx.backend.base.Backend`).

This is what lets ``onnx.backend.test.BackendTest`` run fastcnn over ONNX's own conformance
cases (``tests/conformance/``), and what lets code written for the ONNX backend API use
fastcnn unchanged::

    rep = fastcnn.onnx_backend.prepare(model, "CPU")
    outputs = rep.run([x])          # NumPy arrays, in the model's output order

``prepare`` is :func:`fastcnn.load` with the reference ``torch`` backend: onnx's full check,
the importer (every unsupported op or attribute refused there with
:class:`~fastcnn.errors.UnsupportedModelError`), then an :class:`~fastcnn.Engine`.
Outputs keep their dtype (a float64 model answers in float64), as ONNX's tests require.

Integer and boolean graph inputs. fastcnn computes float graphs; the integer tensors of a
CNN (Reshape's target, Pad's pads, the axes of Squeeze or ReduceMean) are constants it folds
at import time. ONNX's one-node test models, and some hand-built models, feed those as
graph inputs instead. When such inputs are all that stands in the way, :meth:`prepare`
returns a rep that imports the model on the first run with those inputs bound to the values
given (and again when the values change), the float inputs staying run-time inputs. A model
whose inputs are all integer or boolean is refused: there would be nothing for fastcnn to
compute.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import onnx
import torch
from onnx import TensorProto, numpy_helper
from onnx.backend.base import Backend, BackendRep, namedtupledict

from fastcnn.api import load
from fastcnn.backends import available
from fastcnn.errors import InputError, UnsupportedModelError
from fastcnn.frontend import read_onnx
from fastcnn.runtime import Engine

DEFAULT_BACKEND = "torch"
_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE}
# The element types an input may have to be bound at run time (plain NumPy integers and bool).
_BINDABLE_TYPES = {TensorProto.INT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64,
                   TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64,
                   TensorProto.BOOL}


def torch_device(device: str) -> torch.device:
    """ONNX's device string (``"CPU"``, ``"CUDA"``, ``"CUDA:1"``) as a torch device."""
    kind, _, index = device.partition(":")
    kind = kind.strip().lower()
    return torch.device(f"{kind}:{index}" if index else kind)


def runtime_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The inputs a caller feeds, in order: graph inputs no initializer backs.

    Old exporters list weights among the graph inputs; ONNX's backend API (and its test
    runner) passes values only for the real inputs, in graph order.
    """
    weights = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in weights]


def _is_float(vi: onnx.ValueInfoProto) -> bool:
    return vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type in _FLOAT_TYPES


def _is_bindable(vi: onnx.ValueInfoProto) -> bool:
    return vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type in _BINDABLE_TYPES


class FastCNNRep(BackendRep):
    """A prepared model: an :class:`~fastcnn.Engine`, run many times."""

    def __init__(self, engine: Engine, input_names: list[str]) -> None:
        self.engine = engine
        self.input_names = input_names

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Outputs as NumPy arrays, for inputs given as a list (model order), a dict, or one array."""
        return self.run_fed(feed_by_name(inputs, self.input_names))

    def run_fed(self, fed: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
        """Run with inputs keyed by name; the engine takes them in its graph's input order."""
        graph = self.engine.graph
        missing = [v.name for v in graph.inputs if v.name not in fed]
        if missing:
            raise InputError(f"missing input(s) {', '.join(missing)}; given: {', '.join(fed) or 'none'}")
        outputs = self.engine.run([_array_or_tensor(fed[v.name]) for v in graph.inputs])
        arrays = [t.detach().cpu().numpy() for t in outputs]
        return namedtupledict("Outputs", [v.name for v in graph.outputs])(*arrays)


class BindingRep(BackendRep):
    """A model whose integer/boolean inputs are bound to their values at run time (see module doc)."""

    def __init__(self, model: onnx.ModelProto, bound: list[str], device: torch.device, backend: str) -> None:
        self.model = model
        self.bound = bound
        self.device = device
        self.backend = backend
        self.input_names = [vi.name for vi in runtime_inputs(model)]
        self._reps: dict[bytes, FastCNNRep] = {}

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        fed = feed_by_name(inputs, self.input_names)
        missing = [name for name in self.bound if name not in fed]
        if missing:
            raise InputError(f"missing input(s) {', '.join(missing)}")
        values = {name: np.asarray(fed[name]) for name in self.bound}
        key = b"".join(v.dtype.str.encode() + repr(v.shape).encode() + v.tobytes() for v in values.values())
        if key not in self._reps:
            self._reps[key] = build_rep(bind_inputs(self.model, values), self.device, self.backend)
        return self._reps[key].run_fed(fed)


def bind_inputs(model: onnx.ModelProto, values: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``model`` whose inputs named in ``values`` are initializers holding them."""
    bound = onnx.ModelProto()
    bound.CopyFrom(model)
    kept = [vi for vi in bound.graph.input if vi.name not in values]
    del bound.graph.input[:]
    bound.graph.input.extend(kept)
    bound.graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in values.items())
    return bound


def feed_by_name(inputs: Any, names: list[str]) -> dict[str, Any]:
    """Inputs given as a dict, a list in model order, or one array, keyed by input name."""
    if isinstance(inputs, Mapping):
        return dict(inputs)
    listed = [inputs] if isinstance(inputs, (np.ndarray, torch.Tensor)) else list(inputs)
    if len(listed) != len(names):
        raise InputError(f"the model takes {len(names)} input(s) ({', '.join(names)}), got {len(listed)}")
    return dict(zip(names, listed))


def _array_or_tensor(value: Any) -> np.ndarray | torch.Tensor:
    """What the engine takes (it keeps the dtype and checks it): a tensor, or anything NumPy reads."""
    return value if isinstance(value, torch.Tensor) else np.asarray(value)


def build_rep(model: onnx.ModelProto, device: torch.device, backend: str) -> FastCNNRep:
    """Check and import ``model`` into an engine (:func:`fastcnn.load`)."""
    engine = load(model, device=device, backend=backend)
    return FastCNNRep(engine, [vi.name for vi in runtime_inputs(model)])


def bindable_inputs(model: onnx.ModelProto, error: UnsupportedModelError) -> list[str]:
    """The integer/boolean inputs to bind at run time when they are all that the import
    refused and a float input remains; otherwise an empty list (the refusal stands)."""
    inputs = runtime_inputs(model)
    bindable = {vi.name for vi in inputs if _is_bindable(vi)}
    refused = {name for kind, name, _ in error.unsupported if kind == "input"}
    only_inputs = all(kind == "input" for kind, _, _ in error.unsupported)
    if not only_inputs or not refused <= bindable or not any(_is_float(vi) for vi in inputs):
        return []
    return [vi.name for vi in inputs if vi.name in bindable]


class FastCNNBackend(Backend):
    """The ONNX backend API over fastcnn's importer and its reference torch executor."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto | bytes | str, device: str = "CPU",
                **kwargs: Any) -> BackendRep:
        """Check and import ``model`` and build its executor on ``device``.

        Keyword ``backend`` picks the fastcnn executor (default ``"torch"``); other keywords
        (the test runner passes ``rtol``/``atol``) are ignored.

        Raises:
            InvalidModelError: a model onnx's full check or the importer refuses as malformed.
            UnsupportedModelError: naming every op/attribute fastcnn cannot run.
            BackendUnavailableError: ``device`` or the executor is not usable here.
        """
        # A path or bytes is read (and checked) here, to know its inputs; load() checks the proto.
        proto = model if isinstance(model, onnx.ModelProto) else read_onnx(model)
        target = torch_device(device)
        backend = kwargs.get("backend", DEFAULT_BACKEND)
        try:
            return build_rep(proto, target, backend)
        except UnsupportedModelError as exc:
            bound = bindable_inputs(proto, exc)
            if not bound:
                raise
            return BindingRep(proto, bound, target, backend)

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Any, device: str = "CPU",
                 outputs_info: Sequence[tuple[np.dtype, tuple[int, ...]]] | None = None,
                 **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Not offered: the ONNX test runner builds a one-node model and calls ``prepare``."""
        raise NotImplementedError("fastcnn runs whole models; wrap the node in a model and "
                                  "call prepare()")

    @classmethod
    def supports_device(cls, device: str) -> bool:
        """Whether fastcnn's backend can run on ``device`` (``"CPU"``, ``"CUDA"``) here."""
        try:
            target = torch_device(device)
        except RuntimeError:
            return False
        return available(DEFAULT_BACKEND, target)


prepare = FastCNNBackend.prepare
run_model = FastCNNBackend.run_model
run_node = FastCNNBackend.run_node
supports_device = FastCNNBackend.supports_device

__all__ = ["FastCNNBackend", "FastCNNRep", "BindingRep", "prepare", "run_model", "run_node",
           "supports_device"]
