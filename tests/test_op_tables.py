"""The IR's op table, the torch backend's table and the ONNX writer's table name the same ops,
so a new op (a fused one above all) cannot be added to one and forgotten in another."""
from fastcnn.backends.onnx_writer import WRITERS
from fastcnn.backends.torch_ops import TORCH_OPS
from fastcnn.ir import OPS
from fastcnn.ir.fused_ops import FUSED_OPS


def test_every_ir_op_has_a_torch_reference_and_an_onnx_writer():
    assert set(OPS) == set(TORCH_OPS), "IR ops vs torch references"
    assert set(OPS) == set(WRITERS), "IR ops vs ONNX writers"


def test_the_fused_ops_are_in_all_three():
    assert set(FUSED_OPS) == {"fused_conv2d", "fused_gemm", "fused_pool", "se_gate", "se_scale"}
    assert set(FUSED_OPS) <= set(TORCH_OPS) & set(WRITERS)
