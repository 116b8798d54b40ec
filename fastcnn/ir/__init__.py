"""fastcnn's graph IR: what the importer builds, the passes transform and the backends run.

``core`` holds the types and imports nothing of fastcnn; ``schema`` how an op is described;
``ops`` and ``fused_ops`` the ops themselves, ``op_table`` all of them; ``graph`` the graph
and its edits; ``verify`` its invariants; ``storage`` and ``cost`` what the planner and the
passes read off a graph.
"""
from fastcnn.ir.core import LAYOUTS, Dim, Node, Shape, Storage, Value
from fastcnn.ir.graph import Graph
from fastcnn.ir.op_table import OPS
from fastcnn.ir.printer import dump
from fastcnn.ir.schema import Attr, IRError, OpSchema
from fastcnn.ir.verify import verify

__all__ = ["Attr", "Dim", "Graph", "IRError", "LAYOUTS", "Node", "OPS", "OpSchema", "Shape", "Storage",
           "Value", "dump", "verify"]
