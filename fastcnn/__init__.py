"""fastcnn: a fast inference engine for the classic convolutional network families."""
from fastcnn.errors import (
    BackendUnavailableError,
    FastCNNError,
    InputError,
    InvalidModelError,
    UnknownModelError,
    UnsupportedModelError,
    WeightsError,
)
from fastcnn.zoo import ModelInfo, create_model, list_models, model_info

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "FastCNNError",
    "InputError",
    "InvalidModelError",
    "UnsupportedModelError",
    "ModelInfo",
    "UnknownModelError",
    "WeightsError",
    "create_model",
    "list_models",
    "model_info",
]
