"""The one place that turns a missing Ray into a fastcnn error that says what to install."""
from __future__ import annotations

import importlib.util

from fastcnn.errors import BackendUnavailableError

INSTALL_HINT = "pip install 'fastcnn[ray]'"


def require_ray() -> None:
    """Raise :class:`BackendUnavailableError` when Ray Data or Ray Serve cannot be imported.

    Checked before anything imports Ray, so that the user reads what to install rather than a
    bare ``ModuleNotFoundError`` from deep inside an import chain.
    """
    missing = [name for name in ("ray", "ray.data", "ray.serve") if not _importable(name)]
    if missing:
        raise BackendUnavailableError(f"fastcnn.ray needs {', '.join(missing)}: {INSTALL_HINT}")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package itself is absent
        return False
