"""LeNet-5: LeCun et al. 1998, "Gradient-based learning applied to document recognition".

The network of the paper's Section II.B, layer by layer, with the paper's layer names:

    C1  6 feature maps, 5x5 convolution                      156 parameters
    S2  trainable 2x2 subsampling                             12
    C3  16 maps, 5x5, partially connected (Table I)        1,516
    S4  trainable 2x2 subsampling                             32
    C5  120 maps, 5x5 (fully connected to S4)             48,120
    F6  84 units                                          10,164
    output  Euclidean RBF units, fixed prototypes            840 (not trained)

Every layer up to F6 is followed by the squashing function f(a) = 1.7159 tanh(2a/3)
(Appendix A). Weights and biases start uniform in +-2.4/F_i, F_i being the unit's fan-in.

Deviations, with reasons:

* The paper's RBF prototypes are stylised 7x12 bitmaps of the characters, which we cannot
  ship. We draw a deterministic +-1 code instead: rows of the Paley Hadamard matrix of order
  84, so any two prototypes are equally far apart (they differ in exactly 42 of 84 places).
* The RBF output y_i = sum_j (x_j - w_ij)^2 is a penalty (smaller means more likely). The model
  returns -y so that it can be used as logits: argmax picks the class, cross-entropy trains it.

Inputs: the paper maps the background to -0.1 and the foreground to 1.175 (mean about 0,
variance about 1). For pixels in [0, 1] that is ``(x - mean) / std`` with std = 1/1.275 =
0.7843 and mean = 0.1/1.275 = 0.0784, the normalisation registered below.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastcnn.zoo.registry import register_model

# Table I of the paper: the S2 maps each C3 map takes, in ascending order. Maps 0-5 take three
# neighbouring maps, 6-11 four neighbouring maps, 12-14 four non-neighbouring, 15 all six.
C3_CONNECTIONS: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

# The paper's weight initialisation: uniform in +-2.4 / fan-in (Appendix A).
_INIT_SCALE = 2.4


def _uniform_by_fan_in_(tensor: torch.Tensor, fan_in: int | torch.Tensor) -> None:
    """Fill ``tensor`` uniformly in +-2.4/fan_in; ``fan_in`` may broadcast along dim 0."""
    with torch.no_grad():
        bound = _INIT_SCALE / torch.as_tensor(fan_in, dtype=tensor.dtype)
        bound = bound.reshape(-1, *([1] * (tensor.dim() - 1))) if bound.dim() else bound
        tensor.copy_((torch.rand_like(tensor) * 2 - 1) * bound)


class ScaledTanh(nn.Module):
    """The paper's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (Appendix A)."""

    amplitude = 1.7159
    slope = 2.0 / 3.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)


class TrainableSubsampling(nn.Module):
    """S2/S4: each map's 2x2 blocks are summed, times one trainable coefficient, plus one bias."""

    kernel_size = 2

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.kernel_size**2
        _uniform_by_fan_in_(self.weight, fan_in)
        _uniform_by_fan_in_(self.bias, fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The block sum is area x average; the factor folds into the coefficient.
        area = float(self.kernel_size**2)
        coefficient = (area * self.weight).reshape(1, -1, 1, 1)
        pooled = F.avg_pool2d(x, self.kernel_size)  # N x C x H/2 x W/2
        return pooled * coefficient + self.bias.reshape(1, -1, 1, 1)

    def multiply_adds(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
        return output.numel() * self.kernel_size**2


class PartialConv2d(nn.Module):
    """A convolution in which output map ``o`` sees only the input maps ``connections[o]`` (C3).

    Only the used kernels are parameters: ``weight`` holds them output map by output map, each
    map's inputs in ascending order. ``forward`` places them into a dense
    ``(out, in, k, k)`` weight with a fixed gather index and zero mask (non-persistent
    buffers), a constant subgraph that an ONNX exporter folds into one dense initializer.
    """

    def __init__(self, connections: tuple[tuple[int, ...], ...], in_channels: int,
                 kernel_size: int) -> None:
        super().__init__()
        self.connections = tuple(tuple(sorted(inputs)) for inputs in connections)
        self.in_channels, self.out_channels = in_channels, len(connections)
        self.kernel_size = kernel_size
        num_kernels = sum(len(inputs) for inputs in self.connections)
        self.weight = nn.Parameter(torch.empty(num_kernels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(self.out_channels))
        index, mask = self._placement()
        self.register_buffer("kernel_index", index, persistent=False)
        self.register_buffer("connection_mask", mask, persistent=False)
        self.reset_parameters()

    def _placement(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather index into ``weight`` per (out, in) pair (0 where unused) and the 0/1 mask."""
        index = torch.zeros(self.out_channels, self.in_channels, dtype=torch.long)
        mask = torch.zeros(self.out_channels, self.in_channels)
        kernel = 0
        for out_map, inputs in enumerate(self.connections):
            for in_map in inputs:
                index[out_map, in_map], mask[out_map, in_map] = kernel, 1.0
                kernel += 1
        return index.flatten(), mask.reshape(self.out_channels, self.in_channels, 1, 1)

    def reset_parameters(self) -> None:
        """Uniform in +-2.4/F_i, F_i being the fan-in of the output map a kernel belongs to."""
        map_fan_in = [len(inputs) * self.kernel_size**2 for inputs in self.connections]
        kernel_fan_in = [fan_in for fan_in, inputs in zip(map_fan_in, self.connections)
                         for _ in inputs]
        _uniform_by_fan_in_(self.weight, torch.tensor(kernel_fan_in))
        _uniform_by_fan_in_(self.bias, torch.tensor(map_fan_in))

    def dense_weight(self) -> torch.Tensor:
        """The ``(out, in, k, k)`` convolution weight, zero where a pair is not connected."""
        k = self.kernel_size
        gathered = self.weight.index_select(0, self.kernel_index)  # out*in x k x k
        return gathered.reshape(self.out_channels, self.in_channels, k, k) * self.connection_mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)

    def multiply_adds(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
        # Per output position, every used kernel costs k*k; unconnected pairs cost nothing.
        positions = output.numel() // self.out_channels
        return positions * self.weight.numel()


def paley_hadamard(order: int) -> torch.Tensor:
    """Paley's Hadamard matrix of ``order`` = q + 1 for a prime q = 3 (mod 4): +-1, H H^T = order I."""
    q = order - 1
    residues = torch.zeros(q, dtype=torch.bool)
    residues[torch.arange(1, q) ** 2 % q] = True
    offsets = (torch.arange(q).reshape(1, q) - torch.arange(q).reshape(q, 1)) % q  # j - i
    jacobsthal = torch.where(residues[offsets], 1.0, -1.0)
    jacobsthal.fill_diagonal_(0.0)
    skew = torch.zeros(order, order)
    skew[0, 1:], skew[1:, 0], skew[1:, 1:] = 1.0, -1.0, jacobsthal
    return torch.eye(order) + skew


class EuclideanRBF(nn.Module):
    """Output layer: y_i = sum_j (x_j - w_ij)^2 against fixed +-1 prototypes; returns -y.

    The prototypes are a parameter with ``requires_grad=False``: counted and saved like the
    paper's (fixed) output weights, never trained. ``-y`` is computed as
    ``2 x.w_i - |w_i|^2 - |x|^2``: one matrix product whose bias is a constant.
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.prototypes = nn.Parameter(self.code(num_classes, in_features), requires_grad=False)

    @staticmethod
    def code(num_classes: int, length: int) -> torch.Tensor:
        """Rows of a Hadamard matrix, then their negations: up to ``2 * length`` codewords."""
        hadamard = paley_hadamard(length)
        words = torch.cat([hadamard, -hadamard])
        if num_classes > len(words):
            raise ValueError(f"the {length}-unit RBF code has at most {len(words)} classes, "
                             f"not {num_classes}")
        return words[:num_classes].clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prototypes = self.prototypes
        scores = F.linear(x, 2.0 * prototypes, -(prototypes * prototypes).sum(1))  # N x classes
        return scores - (x * x).sum(1, keepdim=True)

    def multiply_adds(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
        return output.numel() * self.prototypes.shape[1]


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, kernel_size=5)
        self.s2 = TrainableSubsampling(6)
        self.c3 = PartialConv2d(C3_CONNECTIONS, in_channels=6, kernel_size=5)
        self.s4 = TrainableSubsampling(16)
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)
        self.f6 = nn.Linear(120, 84)
        self.output = EuclideanRBF(84, num_classes)
        self.squash = ScaledTanh()
        # The custom layers initialise themselves; the standard ones by the same rule.
        for layer in (self.c1, self.c5, self.f6):
            fan_in = layer.weight[0].numel()
            _uniform_by_fan_in_(layer.weight, fan_in)
            _uniform_by_fan_in_(layer.bias, fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 1 x 32 x 32
        x = self.squash(self.c1(x))  # N x 6 x 28 x 28
        x = self.squash(self.s2(x))  # N x 6 x 14 x 14
        x = self.squash(self.c3(x))  # N x 16 x 10 x 10
        x = self.squash(self.s4(x))  # N x 16 x 5 x 5
        x = self.squash(self.c5(x))  # N x 120 x 1 x 1
        x = torch.flatten(x, 1)  # N x 120
        x = self.squash(self.f6(x))  # N x 84
        return self.output(x)  # N x num_classes: minus the RBF distances


@register_model(
    family="lenet",
    paper="LeCun et al. 1998, Gradient-based learning applied to document recognition",
    input_size=(1, 32, 32),
    mean=(0.1 / 1.275,),  # background 0 -> -0.1
    std=(1 / 1.275,),  # foreground 1 -> 1.175
    num_classes=10,
)
def lenet5(num_classes: int = 10) -> nn.Module:
    return LeNet5(num_classes)
