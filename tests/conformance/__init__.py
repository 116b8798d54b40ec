"""Conformance: ONNX's own backend test suite run against fastcnn."""
