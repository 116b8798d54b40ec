"""(stub: to be written)"""
from __future__ import annotations

from fastcnn.ir import Graph


def place_concat(graph: Graph) -> bool:
    return False
