"""Fused Triton GPU kernels: pure compute, one module per family of kernel.

Each module has a private ``@kernel`` function and a public launcher; launchers take torch
tensors whose shapes are logical NCHW and whose strides say where the elements are (an NHWC
buffer, a channel slice of a concat buffer, a DenseNet prefix are all just strides), and
build a :class:`~fastcnn.kernels.launch.KernelCall` that the launcher runs and the compile
check compiles. This package imports nothing else from fastcnn.
"""
