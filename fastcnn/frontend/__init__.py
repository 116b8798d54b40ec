"""ONNX -> fastcnn IR: :func:`read_onnx` validates and loads a model, :func:`import_onnx`
converts it (one converter per ONNX op, constants folded, every problem reported at once)."""
from fastcnn.frontend.importer import import_onnx
from fastcnn.frontend.reader import read_onnx

__all__ = ["import_onnx", "read_onnx"]
