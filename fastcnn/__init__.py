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

__version__ = "0.1.0"

# Imported on first use, so that `import fastcnn` (the zoo, the errors) does not load onnx,
# onnxruntime or the compiler stack; `fastcnn.load` and the rest resolve as usual.
_LAZY = {"export_onnx": "fastcnn.export", "Engine": "fastcnn.runtime", "load": "fastcnn.api"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fastcnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
