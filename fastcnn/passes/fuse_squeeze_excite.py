"""(stub: to be written)"""
from __future__ import annotations

from fastcnn.ir import Graph


def fuse_squeeze_excite(graph: Graph) -> bool:
    return False
