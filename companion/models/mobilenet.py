"""MobileNet v1 (depthwise-separable convolutions) and v2 (inverted residuals with linear bottlenecks).

* **MobileNet v1**: Howard et al., *MobileNets: Efficient Convolutional Neural Networks for Mobile
  Vision Applications*, 2017 (https://arxiv.org/abs/1704.04861). A 3x3 convolution from ``C_in``
  to ``C_out`` channels costs ``9 * C_in * C_out`` weights; splitting it into a 3x3 *depthwise*
  convolution (one filter per channel, ``groups = C_in``: ``9 * C_in``) and a 1x1 *pointwise* one
  (``C_in * C_out``) costs ``1 / C_out + 1 / 9`` of that, 8 to 9 times less, for about 1% of
  ImageNet accuracy (the paper's Table 4). The network is the table :data:`MOBILENET_V1` of such
  layers; a width multiplier ``alpha`` thins every layer (Table 6: 4.2M, 2.6M, 1.3M and 0.5M
  parameters for alpha = 1, 0.75, 0.5, 0.25). torchvision has no MobileNet v1.
* **MobileNet v2**: Sandler, Howard, Zhu, Zhmoginov & Chen, *MobileNetV2: Inverted Residuals and
  Linear Bottlenecks*, CVPR 2018 (https://arxiv.org/abs/1801.04381). Each block expands a narrow
  input ``t`` times with a 1x1 convolution, filters it depthwise, and projects it back to a narrow
  output with a 1x1 convolution *without* ReLU (a "linear bottleneck": ReLU on few channels
  destroys information); the shortcut joins the narrow ends ("inverted" residual). The network is
  the paper's ``t, c, n, s`` table (Table 2), :data:`MOBILENET_V2`.

:func:`mobilenet_v2` has torchvision's parameter names and shapes, so its ImageNet weights load
into it. As in torchvision (and the authors' TensorFlow code), a width multiplier rounds every
width to a multiple of 8 (:func:`make_divisible`) and never thins the last 1x1 convolution (1280
channels); the classifier is dropout (0.2) and a linear layer, which the paper writes as a 1x1
convolution on the pooled 1x1 map (the same computation). MobileNet v1 follows the paper: ReLU
(not ReLU6) after each batch norm, widths ``int(alpha * c)``, no dropout; its Table 1 gives the
second-to-last depthwise layer stride 2, a typo (the map stays 7x7), so ours has stride 1.

The course's own ``small_input=True`` gives the stem convolution and the first stride-2 stage
stride 1, for 28x28 and 32x32 images (the whole network then shrinks the image 8 times, not 32).

Introduced in chapter 10, *Lightweight CNNs: MobileNet, SqueezeNet and EfficientNet*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from companion._checks import check_positive_int
from companion.models._input import CheckedSequential
from companion.models._shapes import check_feature_map

Activation = Callable[..., nn.Module]

#: MobileNet v1 (the paper's Table 1): one depthwise-separable layer per row (sizes for 224x224).
MOBILENET_V1: tuple[tuple[int, int], ...] = (
    # c (pointwise output channels), s (depthwise stride)
    (64, 1),      # 112x112
    (128, 2),     # 56x56
    (128, 1),
    (256, 2),     # 28x28
    (256, 1),
    (512, 2),     # 14x14
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2),    # 7x7
    (1024, 1),    # stride 1: Table 1's "s2" here is a typo (input and output are both 7x7)
)

#: MobileNet v1 for 28x28 and 32x32 images: the first stride-2 row gets stride 1 (with a stride-1 stem).
MOBILENET_V1_SMALL_INPUT = ((64, 1), (128, 1)) + MOBILENET_V1[2:]

#: MobileNet v2 (the paper's Table 2), after a 3x3/2 stem convolution to 32 channels (sizes for 224x224).
MOBILENET_V2: tuple[tuple[int, int, int, int], ...] = (
    # t (expansion), c (output channels), n (blocks), s (stride of the first block)
    (1, 16, 1, 1),     # 112x112
    (6, 24, 2, 2),     # 56x56
    (6, 32, 3, 2),     # 28x28
    (6, 64, 4, 2),     # 14x14
    (6, 96, 3, 1),     # 14x14
    (6, 160, 3, 2),    # 7x7
    (6, 320, 1, 1),    # 7x7, then a 1x1 convolution to 1280 channels
)

#: MobileNet v2 for 28x28 and 32x32 images: the first stride-2 row gets stride 1 (with a stride-1 stem).
MOBILENET_V2_SMALL_INPUT = MOBILENET_V2[:1] + ((6, 24, 2, 1),) + MOBILENET_V2[2:]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a width to the nearest multiple of ``divisor`` (at least ``divisor``), but never more than 10% down.

    Widths that are multiples of 8 map well onto hardware; this is the rule of the MobileNet
    authors' TensorFlow code, which torchvision follows (e.g. ``make_divisible(32 * 0.35) = 16``).
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _check_width_mult(width_mult: object) -> float:
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or width_mult <= 0:
        raise ValueError(f"width_mult must be a positive number (e.g. 0.5, 1.0), got {width_mult!r}")
    return float(width_mult)


class ConvBNReLU(nn.Sequential):
    """Convolution (no bias, "same" padding) -> batch norm -> ReLU (or ReLU6).

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: odd kernel size; the padding ``(kernel_size - 1) // 2`` keeps the size at stride 1.
        stride: stride of the convolution.
        groups: ``in_channels`` for a depthwise convolution.
        activation: ``nn.ReLU`` (MobileNet v1) or ``nn.ReLU6`` (v2, robust in low precision).

    Shapes:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, activation: Activation = nn.ReLU6) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            activation(inplace=True),
        )


class DepthwiseSeparableConv(nn.Module):
    """MobileNet v1's layer: a 3x3 depthwise convolution, then a 1x1 pointwise one (each with batch norm and ReLU).

    Args:
        in_channels, out_channels: channels in and out.
        stride: stride of the depthwise convolution.

    Shapes:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = ConvBNReLU(in_channels, in_channels, 3, stride, groups=in_channels, activation=nn.ReLU)
        self.pointwise = ConvBNReLU(in_channels, out_channels, 1, activation=nn.ReLU)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class InvertedResidual(nn.Module):
    """MobileNet v2's block: 1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection, plus a shortcut.

    Args:
        in_channels, out_channels: channels in and out.
        stride: stride of the depthwise convolution (1 or 2).
        expand_ratio: ``t``, the hidden width is ``round(t * in_channels)``; with ``t = 1`` there is
            no expansion convolution.

    The shortcut ``x + block(x)`` is used when the shapes allow it: ``stride == 1`` and
    ``in_channels == out_channels``.

    Shapes:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        hidden = int(round(in_channels * expand_ratio))
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(in_channels, hidden, 1))  # expand
        layers += [
            ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),  # depthwise
            nn.Conv2d(hidden, out_channels, 1, bias=False),       # project, linear: no ReLU
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


def _init_weights(model: nn.Module) -> None:
    """He initialisation for the convolutions, batch norms as the identity, N(0, 0.01) for the classifier."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


class MobileNetV1(nn.Module):
    """MobileNet v1: a 3x3 convolution, the table of depthwise-separable layers, global average pooling, a linear layer.

    Args:
        config: rows ``(c, s)``, :data:`MOBILENET_V1` (or :data:`MOBILENET_V1_SMALL_INPUT`).
        num_classes: outputs of the classifier.
        in_channels: channels of the input images.
        width_mult: the paper's width multiplier ``alpha``: every layer has ``int(alpha * c)`` channels.
        stem_stride: stride of the first convolution (2; 1 for small images).

    ``features(x)``: ``(N, in_channels, H, W) -> (N, int(1024 * alpha), h, w)`` (7x7 for 224x224).
    ``head(z)``: ``(N, C, h, w) -> (N, num_classes)``.
    """

    def __init__(self, config: Sequence[tuple[int, int]] = MOBILENET_V1, num_classes: int = 1000, *,
                 in_channels: int = 3, width_mult: float = 1.0, stem_stride: int = 2) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(in_channels, "in_channels")
        alpha = _check_width_mult(width_mult)
        channels = int(32 * alpha)
        layers: list[nn.Module] = [ConvBNReLU(in_channels, channels, 3, stem_stride, activation=nn.ReLU)]
        for c, s in config:
            layers.append(DepthwiseSeparableConv(channels, int(c * alpha), s))
            channels = int(c * alpha)
        self.in_channels, self.out_channels = in_channels, channels
        # Every convolution is padded ("same"), so any input size works.
        self.features = CheckedSequential(layers, channels=in_channels, model="MobileNetV1")
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        _init_weights(self)

    # ``features`` is the ``CheckedSequential`` above: ``model.features(x)`` runs (and checks) it.

    def head(self, z: Tensor) -> Tensor:
        """Global average pooling and the classifier: ``(N, C, h, w) -> (N, num_classes)``."""
        check_feature_map(z, channels=self.out_channels, model="MobileNetV1")
        return self.classifier(torch.flatten(self.avgpool(z), 1))  # (N, C) -> (N, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W) -> (N, num_classes)`` logits."""
        return self.head(self.features(x))


class MobileNetV2(nn.Module):
    """MobileNet v2: a 3x3 convolution, the ``t, c, n, s`` table of inverted residuals, a 1x1 convolution, a classifier.

    Args:
        config: rows ``(t, c, n, s)``, :data:`MOBILENET_V2` (or :data:`MOBILENET_V2_SMALL_INPUT`).
        num_classes: outputs of the classifier.
        in_channels: channels of the input images.
        width_mult: multiplies every width (rounded by :func:`make_divisible`), except that the last
            1x1 convolution keeps at least 1280 channels.
        stem_stride: stride of the first convolution (2; 1 for small images).
        dropout: dropout probability before the linear classifier.

    ``features(x)``: ``(N, in_channels, H, W) -> (N, 1280, h, w)`` (7x7 for 224x224).
    ``head(z)``: ``(N, 1280, h, w) -> (N, num_classes)``.
    """

    def __init__(self, config: Sequence[tuple[int, int, int, int]] = MOBILENET_V2, num_classes: int = 1000, *,
                 in_channels: int = 3, width_mult: float = 1.0, stem_stride: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(in_channels, "in_channels")
        alpha = _check_width_mult(width_mult)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        channels = make_divisible(32 * alpha)
        last = make_divisible(1280 * max(1.0, alpha))
        layers: list[nn.Module] = [ConvBNReLU(in_channels, channels, 3, stem_stride)]
        for t, c, n, s in config:
            out = make_divisible(c * alpha)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t))  # only the first block strides
                channels = out
        layers.append(ConvBNReLU(channels, last, 1))
        self.in_channels, self.out_channels = in_channels, last
        # Every convolution is padded ("same"), so any input size works.
        self.features = CheckedSequential(layers, channels=in_channels, model="MobileNetV2")
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        _init_weights(self)

    # ``features`` is the ``CheckedSequential`` above: ``model.features(x)`` runs (and checks) it.

    def head(self, z: Tensor) -> Tensor:
        """Global average pooling, dropout and the classifier: ``(N, 1280, h, w) -> (N, num_classes)``."""
        check_feature_map(z, channels=self.out_channels, model="MobileNetV2")
        return self.classifier(torch.flatten(self.avgpool(z), 1))  # (N, 1280) -> (N, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W) -> (N, num_classes)`` logits."""
        return self.head(self.features(x))


def mobilenet_v1(num_classes: int = 1000, *, width_mult: float = 1.0, in_channels: int = 3,
                 small_input: bool = False) -> MobileNetV1:
    """MobileNet v1 (the paper's Table 1): 4,231,976 parameters for 1000 classes, the paper's 4.2 million."""
    config = MOBILENET_V1_SMALL_INPUT if small_input else MOBILENET_V1
    return MobileNetV1(config, num_classes, in_channels=in_channels, width_mult=width_mult,
                       stem_stride=1 if small_input else 2)


def mobilenet_v2(num_classes: int = 1000, *, width_mult: float = 1.0, in_channels: int = 3,
                 small_input: bool = False, dropout: float = 0.2) -> MobileNetV2:
    """MobileNet v2 as torchvision builds it: 3,504,872 parameters for 1000 classes."""
    config = MOBILENET_V2_SMALL_INPUT if small_input else MOBILENET_V2
    return MobileNetV2(config, num_classes, in_channels=in_channels, width_mult=width_mult,
                       stem_stride=1 if small_input else 2, dropout=dropout)


__all__ = ["MOBILENET_V1", "MOBILENET_V1_SMALL_INPUT", "MOBILENET_V2", "MOBILENET_V2_SMALL_INPUT", "ConvBNReLU",
           "DepthwiseSeparableConv", "InvertedResidual", "MobileNetV1", "MobileNetV2", "make_divisible",
           "mobilenet_v1", "mobilenet_v2"]
