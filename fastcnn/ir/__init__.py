"""fastcnn's graph IR: what the importer builds, the rewrites transform and the backends run."""
from fastcnn.ir.graph import Dim, Graph, Node, Shape, Value
from fastcnn.ir.ops import OPS, IRError, OpSchema
from fastcnn.ir.printer import dump
from fastcnn.ir.verify import verify

__all__ = ["Dim", "Graph", "IRError", "Node", "OPS", "OpSchema", "Shape", "Value", "dump", "verify"]
