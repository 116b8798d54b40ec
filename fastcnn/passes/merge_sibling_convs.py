"""(stub: to be written)"""
from __future__ import annotations

from fastcnn.ir import Graph


def merge_sibling_convs(graph: Graph) -> bool:
    return False
