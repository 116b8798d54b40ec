"""(stub: to be written)"""
from __future__ import annotations

from fastcnn.ir import Graph


def fold_flatten_into_gemm(graph: Graph) -> bool:
    return False
