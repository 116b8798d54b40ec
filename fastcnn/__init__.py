"""fastcnn: a fast inference engine for the classic convolutional network families."""
from fastcnn.errors import (
    BackendUnavailableError,
    ExportError,
    FastCNNError,
    InputError,
    InvalidModelError,
    UnknownModelError,
    UnsupportedModelError,
    WeightsError,
)
from fastcnn.zoo import ModelInfo, create_model, list_models, model_info
from fastcnn.export import export_onnx
from fastcnn.runtime import Engine
from fastcnn.api import load

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "Engine",
    "ExportError",
    "FastCNNError",
    "InputError",
    "InvalidModelError",
    "UnsupportedModelError",
    "ModelInfo",
    "UnknownModelError",
    "WeightsError",
    "create_model",
    "export_onnx",
    "list_models",
    "load",
    "model_info",
]
