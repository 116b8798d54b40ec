"""The decorator that fills fastcnn's registries: IR op schemas, ONNX converters, symbolic folds,
torch ops, ONNX writers. Each registry stays a plain dict in its own module; this only fills it.
It imports nothing of fastcnn, so every layer (the IR included) may use it."""
from __future__ import annotations

from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def registrar(table: dict[str, Any], what: str,
              build: Callable[..., Any] | None = None) -> Callable[..., Callable[[F], F]]:
    """``register = registrar(TABLE, "torch op")``, then ``@register("relu", "clip")`` puts the
    function in ``TABLE`` under each name (``register("relu")(fn)`` for a function made
    elsewhere). With ``build``, ``@register(name, **details)`` stores ``build(name, fn,
    **details)`` instead (an op schema around a shape function, say). A name registered twice
    is a bug, refused at import."""

    def register(*names: str, **details: Any) -> Callable[[F], F]:
        if details and build is None:
            raise TypeError(f"{what}: this registry takes no details, got {sorted(details)}")

        def decorator(fn: F) -> F:
            for name in names:
                if name in table:
                    raise ValueError(f"{what} {name!r} registered twice")
                table[name] = build(name, fn, **details) if build is not None else fn
            return fn

        return decorator

    return register
