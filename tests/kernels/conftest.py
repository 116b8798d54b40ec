"""Fixtures for the kernel tests (their tensors, tolerances and layouts are in tensors.py)."""
import numpy as np
import pytest


@pytest.fixture
def bf16_dot(monkeypatch):
    """Let Triton's interpreter multiply bfloat16 ``tl.dot`` operands as numbers.

    Triton 3.9's interpreter stores bfloat16 as uint16 and hands those raw 16-bit patterns to
    ``numpy.matmul``. A bf16 value is the top half of an fp32, so this upcasts them first (bf16
    products are exact in fp32, as on the GPU's tensor cores) and the bf16 paths of the kernels
    that use ``tl.dot`` run here too. Without the interpreter's builder it does nothing.
    """
    from triton.runtime import interpreter

    if not hasattr(interpreter, "InterpreterBuilder"):
        return
    original = interpreter.InterpreterBuilder.create_dot

    def upcast(handle):
        if handle.dtype.scalar.name != "bf16":  # stored as uint16: the top half of an fp32
            return handle
        data = (handle.data.astype(np.uint32) << 16).view(np.float32)
        return interpreter.TensorHandle(data, interpreter.tl.float32)

    def create_dot(self, a, b, d, *args):
        return original(self, upcast(a), upcast(b), d, *args)

    monkeypatch.setattr(interpreter.InterpreterBuilder, "create_dot", create_dot)
