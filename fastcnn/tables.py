"""The decorator that fills fastcnn's registries: ONNX converters, symbolic folds, torch ops,
ONNX writers. Each registry stays a plain dict in its own module; this only fills it."""
from __future__ import annotations

from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def registrar(table: dict[str, F], what: str) -> Callable[..., Callable[[F], F]]:
    """``register = registrar(TABLE, "torch op")``, then ``@register("relu", "clip")`` puts the
    function in ``TABLE`` under each name. A name registered twice is a bug, refused at import."""

    def register(*names: str) -> Callable[[F], F]:
        def decorator(fn: F) -> F:
            for name in names:
                if name in table:
                    raise ValueError(f"{what} {name!r} registered twice")
                table[name] = fn
            return fn

        return decorator

    return register
