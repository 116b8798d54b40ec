"""(stub: to be written)"""
from __future__ import annotations

from fastcnn.ir import Graph


def fold_channel_affine(graph: Graph) -> bool:
    return False
