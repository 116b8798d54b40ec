"""Export a PyTorch model (or a zoo model by name) to a checked, shape-inferred ONNX file.

The TorchScript exporter (``dynamo=False``) is used on purpose: the dynamo exporter needs
onnxscript, which fastcnn does not depend on, and the TorchScript one writes the plain
Conv/BatchNormalization/Gemm graphs that every ONNX consumer reads. The file it writes has
one input named ``input`` with a dynamic batch dimension ``N`` and one output ``logits``,
is shape-inferred (so other tools see every intermediate shape) and passes onnx's full check.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from fastcnn.errors import ExportError, InputError
from fastcnn.zoo import create_model, model_info

DEFAULT_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_DIM = "N"


def export_onnx(model_or_name: nn.Module | str, path: str | os.PathLike, opset: int = DEFAULT_OPSET,
                input_size: tuple[int, int, int] | None = None,
                dtype: torch.dtype = torch.float32, keep_batch_norm: bool = False) -> Path:
    """Write ``model_or_name`` to ``path`` as ONNX and return the path.

    Args:
        model_or_name: a zoo model name (built with ``create_model(name)``) or an ``nn.Module``.
        input_size: ``(C, H, W)`` of one example; a zoo name supplies its own, a module needs it.
        dtype: the example input's dtype (and so the exported graph's).
        keep_batch_norm: write each BatchNormalization as a node of its own, as files from
            many other tools have them. By default torch folds a batch norm that follows a
            convolution into it.
    Raises:
        InputError: a module without ``input_size``, or a malformed ``input_size``.
        ExportError: torch could not export the model or the file fails onnx's checks.
    """
    model, input_size = _resolve_model(model_or_name, input_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros((1, *input_size), dtype=dtype)
    _torch_export(model, example, path, opset, keep_batch_norm)
    _infer_and_check(path)
    return path


def _resolve_model(model_or_name: nn.Module | str,
                   input_size: tuple[int, int, int] | None) -> tuple[nn.Module, tuple[int, ...]]:
    """The module to export and its per-example input size."""
    if isinstance(model_or_name, str):
        input_size = input_size or model_info(model_or_name).input_size
        model = create_model(model_or_name)
    elif isinstance(model_or_name, nn.Module):
        model = model_or_name
    else:
        raise InputError(f"export_onnx takes a zoo model name or a torch.nn.Module, "
                         f"got {type(model_or_name).__name__}")
    if input_size is None:
        raise InputError("exporting a torch.nn.Module needs input_size=(C, H, W)")
    input_size = tuple(input_size)
    if not input_size or not all(isinstance(d, int) and d > 0 for d in input_size):
        raise InputError(f"input_size must be positive ints such as (3, 224, 224), got {input_size}")
    return model, input_size


def _torch_export(model: nn.Module, example: torch.Tensor, path: Path, opset: int,
                  keep_batch_norm: bool = False) -> None:
    """Run the TorchScript exporter, turning its failures into :class:`ExportError`.

    The exporter folds Conv + BatchNormalization only in its EVAL training mode; PRESERVE
    exports the (eval-mode) model as it is, batch norms included.
    """
    training = torch.onnx.TrainingMode.PRESERVE if keep_batch_norm else torch.onnx.TrainingMode.EVAL
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter announces its own deprecation on every call, and its
            # internals call deprecated helpers of their own; neither is the user's concern.
            warnings.filterwarnings("ignore", r".*legacy TorchScript-based ONNX export", DeprecationWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx\.")
            # A strided Slice it cannot fold is left for the importer, which folds it.
            warnings.filterwarnings("ignore", r"Constant folding - Only steps=1", UserWarning)
            # torch's own F.local_response_norm tests ``input.numel() == 0``; harmless in a trace.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"torch\.nn\.functional")
            # PRESERVE mode warns that folding may change parameters of a model in training
            # mode; the model is in eval mode here.
            warnings.filterwarnings("ignore", r".*constant folding be turned off", UserWarning)
            torch.onnx.export(
                model, (example,), str(path), dynamo=False,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: BATCH_DIM}, OUTPUT_NAME: {0: BATCH_DIM}},
                opset_version=opset, do_constant_folding=True, training=training,
            )
    except Exception as exc:  # torch raises many unrelated types here
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"torch.onnx.export failed for {type(model).__name__}: {first_line}") from exc
    finally:
        model.train(was_training)


def _infer_and_check(path: Path) -> None:
    """Store inferred shapes in the file, then run onnx's full check on it."""
    try:
        # The path variants work on files of any size (no in-memory 2 GB protobuf limit).
        onnx.shape_inference.infer_shapes_path(str(path), str(path), check_type=True, strict_mode=True)
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # onnx raises ValidationError, InferenceError, RuntimeError
        raise ExportError(f"exported file {path} fails onnx's checks: {exc}") from exc
