"""Session-wide test setup.

Without a GPU, fastcnn's Triton kernels run under Triton's interpreter on CPU tensors. Triton
decides between its interpreter and its compiler when a kernel is defined (at import), so the
switch is set here, before any test module imports ``fastcnn.kernels``.
"""
import os

import torch

if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
