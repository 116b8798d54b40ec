"""(stub: to be written)"""
from __future__ import annotations

from fastcnn.ir import Graph


def fold_batch_norm(graph: Graph) -> bool:
    return False
