"""torch -> ONNX: :func:`export_onnx` writes a checked, shape-inferred file with a dynamic batch."""
from fastcnn.export.onnx_export import BATCH_DIM, DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAME, export_onnx

__all__ = ["BATCH_DIM", "DEFAULT_OPSET", "INPUT_NAME", "OUTPUT_NAME", "export_onnx"]
