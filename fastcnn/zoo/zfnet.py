"""ZFNet: Zeiler and Fergus 2013, "Visualizing and understanding convolutional networks".

The network of the paper's Figure 3, built by the AlexNet-style builder in alexnet.py:

    layer 1  96 filters 7x7 stride 2    3 x 224 x 224 -> 96 x 110 x 110, pool -> 55 x 55, norm
    layer 2  256 filters 5x5 stride 2   -> 256 x 26 x 26, pool -> 13 x 13, norm
    layer 3  384 filters 3x3            -> 384 x 13 x 13
    layer 4  384 filters 3x3            -> 384 x 13 x 13
    layer 5  256 filters 3x3            -> 256 x 13 x 13, pool -> 6 x 6
    layers 6, 7  4096 units with dropout 0.5; output layer

It differs from AlexNet where the paper says so (Section 5): a 7x7 stride-2 first layer
instead of 11x11 stride 4, a stride-2 second layer, and dense connections in layers 3-5
instead of AlexNet's two-GPU groups (it ran on one GPU). Each layer is convolution, ReLU,
[max pooling], [normalisation across feature maps] (Section 2), so here pooling precedes
the normalisation, unlike AlexNet.

Choices the paper leaves open, with reasons:

* Padding 1 on layer 1 and Caffe-style ceil-mode pooling give Figure 3's sizes exactly
  (110 -> 55 -> 26 -> 13 -> 13 -> 13 -> 6); floor-mode pooling would give 54 and 12.
* The "contrast normalization" across feature maps is taken as AlexNet's local response
  normalisation with AlexNet's constants; the paper gives none.
* Initialisation (Section 3): "all weights are initialized to 1e-2 and biases are set to 0",
  read as weights N(0, 0.01) (a constant would make every filter identical).
* Training-only parts (filter RMS renormalisation) are absent. No library ships ZFNet, so
  ``reference`` is None.
"""
from __future__ import annotations

from torch import nn

from fastcnn.zoo.alexnet import AlexNet, AlexNetConfig, ConvLayer
from fastcnn.zoo.registry import register_model

ZFNET = AlexNetConfig(
    conv_layers=(
        ConvLayer(96, 7, stride=2, padding=1, normalize=True, pool=True),  # 96 x 110 x 110 -> 55
        ConvLayer(256, 5, stride=2, normalize=True, pool=True),  # 256 x 26 x 26 -> 13 x 13
        ConvLayer(384, 3, padding=1),  # 384 x 13 x 13
        ConvLayer(384, 3, padding=1),  # 384 x 13 x 13
        ConvLayer(256, 3, padding=1, pool=True),  # 256 x 13 x 13 -> 6 x 6
    ),
    pool_before_norm=True,
    pool_ceil_mode=True,
)


@register_model(
    family="zfnet",
    paper="Zeiler & Fergus 2013, Visualizing and understanding convolutional networks",
    input_size=(3, 224, 224),
)
def zfnet(num_classes: int = 1000) -> nn.Module:
    return AlexNet(ZFNET, num_classes)
