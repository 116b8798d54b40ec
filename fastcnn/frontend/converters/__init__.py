"""The converter table: ONNX op type -> converter, merged from one table per theme."""
from fastcnn.frontend.converters import constants, conv_pool, elementwise, layers, reduce, shape_ops
from fastcnn.frontend.registry import Converter, merge_tables

CONVERTERS: dict[str, Converter] = merge_tables(
    conv_pool.CONVERTERS,
    layers.CONVERTERS,
    elementwise.CONVERTERS,
    shape_ops.CONVERTERS,
    reduce.CONVERTERS,
    constants.CONVERTERS,
)

__all__ = ["CONVERTERS"]
