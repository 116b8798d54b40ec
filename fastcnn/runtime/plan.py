"""(stub: the plan and memory planner are being written)"""
from __future__ import annotations

from fastcnn.ir import Graph


class Plan:
    pass


def make_plan(graph: Graph, batch: int = 1) -> Plan:
    raise NotImplementedError
