"""(stub: to be written)"""
from __future__ import annotations

from fastcnn.ir import Graph


def drop_identity(graph: Graph) -> bool:
    return False
