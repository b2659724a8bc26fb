"""EfficientNet-B0: MBConv blocks and compound scaling.

Tan and Le, 2019, *EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks*,
https://arxiv.org/abs/1905.11946.

* **MBConv** (the block of MobileNet v2, chapter 10, plus squeeze-and-excitation, chapter 11): a
  1x1 convolution expands the channels ``t`` times, a ``k x k`` depthwise convolution filters
  them, an SE gate reweights them (its bottleneck has a quarter of the block's *input* channels),
  and a 1x1 linear projection narrows them again; a shortcut joins the narrow ends when the shapes
  allow. The activation is SiLU (``x * sigmoid(x)``, "swish"). During training the residual branch
  of each block is dropped for a random subset of the samples (stochastic depth, Huang et al.,
  2016), with a probability growing linearly from 0 to 0.2 along the network.
* **B0** is the base network found by architecture search, the table :data:`EFFICIENTNET_B0`.
* **Compound scaling**: B1-B7 scale depth by ``alpha**phi``, width by ``beta**phi`` and resolution
  by ``gamma**phi`` with ``alpha * beta**2 * gamma**2 ~= 2`` (alpha=1.2, beta=1.1, gamma=1.15), so
  that each step of ``phi`` doubles the FLOPs; :func:`compound_scaling` gives the three factors
  and :func:`scaled_config` applies depth and width to the table.

:func:`efficientnet_b0` has torchvision's parameter names and shapes (5,288,548 parameters for
1000 classes), so torchvision's state dict loads into it and gives the same outputs.

Introduced in chapter 10, *Lightweight CNNs*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from companion._checks import check_positive_int
from companion.models._input import CheckedSequential
from companion.models._shapes import check_feature_map
from companion.models.mobilenet import ConvBNReLU, make_divisible

#: EfficientNet-B0 (the paper's Table 1), after a 3x3/2 stem convolution to 32 channels (sizes for 224x224).
EFFICIENTNET_B0: tuple[tuple[int, int, int, int, int], ...] = (
    # t (expansion), k (kernel), s (stride of the first block), c (output channels), n (blocks)
    (1, 3, 1, 16, 1),     # 112x112
    (6, 3, 2, 24, 2),     # 56x56
    (6, 5, 2, 40, 2),     # 28x28
    (6, 3, 2, 80, 3),     # 14x14
    (6, 5, 1, 112, 3),    # 14x14
    (6, 5, 2, 192, 4),    # 7x7
    (6, 3, 1, 320, 1),    # 7x7, then a 1x1 convolution to 1280 channels
)


def compound_scaling(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15) -> tuple[float, float, float]:
    """The paper's equation (3): depth, width and resolution multipliers ``alpha**phi, beta**phi, gamma**phi``."""
    return alpha**phi, beta**phi, gamma**phi


def scaled_config(depth_mult: float, width_mult: float,
                  config: Sequence[tuple[int, int, int, int, int]] = EFFICIENTNET_B0) -> list[tuple[int, int, int, int, int]]:
    """The B0 table with ``ceil(n * depth_mult)`` blocks and ``make_divisible(c * width_mult)`` channels per stage."""
    return [(t, k, s, make_divisible(c * width_mult), int(math.ceil(n * depth_mult))) for t, k, s, c, n in config]


class ConvBN(nn.Sequential):
    """A 1x1 convolution (no bias) and batch norm, no activation: MBConv's linear projection."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))


class SqueezeExcitation(nn.Module):
    """SE gate with SiLU: ``x * sigmoid(fc2(silu(fc1(mean_hw(x)))))``; ``(N, C, H, W) -> (N, C, H, W)``."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        gates = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))  # (N, C, 1, 1)
        return x * gates


class StochasticDepth(nn.Module):
    """Drop the residual branch of a random fraction ``p`` of the samples in training, scaling the rest by ``1 / (1 - p)``."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty(len(x), *([1] * (x.dim() - 1)), device=x.device, dtype=x.dtype).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)  # (N, C, H, W) * (N, 1, 1, 1)


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-and-excitation: expand -> depthwise -> SE -> project (+ shortcut).

    Args:
        in_channels, out_channels: channels in and out.
        expand_ratio: ``t``; no expansion convolution when it is 1.
        kernel_size: of the depthwise convolution (3 or 5).
        stride: of the depthwise convolution.
        drop_prob: stochastic depth probability of this block.
    """

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: int, kernel_size: int, stride: int,
                 drop_prob: float = 0.0) -> None:
        super().__init__()
        hidden = make_divisible(in_channels * expand_ratio)
        layers: list[nn.Module] = []
        if hidden != in_channels:
            layers.append(ConvBNReLU(in_channels, hidden, 1, activation=nn.SiLU))  # expand
        layers += [
            ConvBNReLU(hidden, hidden, kernel_size, stride, groups=hidden, activation=nn.SiLU),  # depthwise
            SqueezeExcitation(hidden, max(1, in_channels // 4)),  # squeeze to a quarter of the *input* width
            ConvBN(hidden, out_channels),  # project, linear
        ]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop_prob)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + self.stochastic_depth(out) if self.use_residual else out


class EfficientNet(nn.Module):
    """EfficientNet: a 3x3/2 stem, stages of MBConv blocks from a ``t, k, s, c, n`` table, a 1x1 convolution, a classifier.

    Args:
        config: rows ``(t, k, s, c, n)``, :data:`EFFICIENTNET_B0` (or :func:`scaled_config`).
        num_classes: outputs of the classifier.
        in_channels: channels of the input images.
        dropout: before the classifier (0.2 for B0).
        stochastic_depth_prob: the last block's drop probability; earlier blocks' grow linearly to it.
        last_channels: channels of the final 1x1 convolution (4 x the last stage's, 1280 for B0).

    ``features(x)``: ``(N, in_channels, H, W) -> (N, 1280, h, w)`` (7x7 for 224x224).
    ``head(z)``: ``(N, 1280, h, w) -> (N, num_classes)``.
    """

    def __init__(self, config: Sequence[tuple[int, int, int, int, int]] = EFFICIENTNET_B0, num_classes: int = 1000,
                 *, in_channels: int = 3, dropout: float = 0.2, stochastic_depth_prob: float = 0.2,
                 last_channels: int | None = None) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(in_channels, "in_channels")
        channels = make_divisible(32 * config[0][3] / 16)  # 32 for B0: the stem scales with the first stage
        layers: list[nn.Module] = [ConvBNReLU(in_channels, channels, 3, 2, activation=nn.SiLU)]
        total, index = sum(n for *_, n in config), 0
        for t, k, s, c, n in config:
            stage = []
            for i in range(n):
                stage.append(MBConv(channels, c, t, k, s if i == 0 else 1, stochastic_depth_prob * index / total))
                channels, index = c, index + 1
            layers.append(nn.Sequential(*stage))
        last = last_channels or 4 * channels
        layers.append(ConvBNReLU(channels, last, 1, activation=nn.SiLU))
        self.in_channels, self.out_channels = in_channels, last
        self.features = CheckedSequential(layers, channels=in_channels, model="EfficientNet")
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout, inplace=True), nn.Linear(last, num_classes))
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    # ``features`` is the ``CheckedSequential`` above: ``model.features(x)`` runs (and checks) it.

    def head(self, z: Tensor) -> Tensor:
        """Global average pooling, dropout and the classifier: ``(N, 1280, h, w) -> (N, num_classes)``."""
        check_feature_map(z, channels=self.out_channels, model="EfficientNet")
        return self.classifier(torch.flatten(self.avgpool(z), 1))

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W) -> (N, num_classes)`` logits."""
        return self.head(self.features(x))


def efficientnet_b0(num_classes: int = 1000, *, in_channels: int = 3, dropout: float = 0.2) -> EfficientNet:
    """EfficientNet-B0 as torchvision builds it: 5,288,548 parameters for 1000 classes."""
    return EfficientNet(EFFICIENTNET_B0, num_classes, in_channels=in_channels, dropout=dropout)


__all__ = ["EFFICIENTNET_B0", "MBConv", "EfficientNet", "SqueezeExcitation", "StochasticDepth", "compound_scaling",
           "efficientnet_b0", "scaled_config"]
