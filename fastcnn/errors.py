"""fastcnn's exception types: every error a user can cause is one of these.

All derive from :class:`FastCNNError`, so ``except fastcnn.FastCNNError`` catches
anything fastcnn raises on purpose; anything else escaping is a bug.
"""


class FastCNNError(Exception):
    """Base class of every error fastcnn raises on purpose."""


class UnknownModelError(FastCNNError, KeyError):
    """A model name that is not in the zoo."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(FastCNNError):
    """A weight file that is missing, unreadable, or does not fit the model."""


class InvalidModelError(FastCNNError):
    """An ONNX file or graph that is malformed: truncated, cyclic, inconsistent, unsafe."""


class UnsupportedModelError(FastCNNError):
    """A well-formed model that uses ops or attributes fastcnn cannot run.

    ``unsupported`` lists ``(op_type, node_name, reason)`` for every offending node, so a user
    learns everything that is missing from one error.
    """

    def __init__(self, message: str, unsupported: list[tuple[str, str, str]] | None = None) -> None:
        super().__init__(message)
        self.unsupported = list(unsupported or [])


class InputError(FastCNNError, ValueError):
    """An input that does not match what the engine expects (shape, rank, dtype, channels)."""


class BackendUnavailableError(FastCNNError):
    """A backend or device that was asked for and is not available here."""


class ExportError(FastCNNError):
    """A PyTorch model that could not be exported to a valid ONNX file."""
