"""Pre-activation ResNet: batch norm and ReLU before each convolution, a clean identity path.

He, Zhang, Ren & Sun, *Identity Mappings in Deep Residual Networks*, ECCV 2016
(https://arxiv.org/abs/1603.05027). The original block applies ReLU after the addition,
``x_{l+1} = relu(x_l + F(x_l))``; the pre-activation block moves BN and ReLU inside the branch,
``x_{l+1} = x_l + F(x_l)`` with ``F = conv(relu(bn(conv(relu(bn(.))))))``, so that
``x_L = x_l + sum_{i=l}^{L-1} F(x_i)``: any block's signal (and gradient) reaches any other
unchanged. That is what lets the paper train a 1001-layer network.

As in the paper, a projection shortcut (a 1x1 convolution, used where a block changes shape) takes
the pre-activated input ``relu(bn1(x))``, and the network ends with an extra BN-ReLU after the
addition of its last block, before pooling. Deviation: the paper applies the first block's
activation right after the stem, before the split, so that its shortcut also sees it; here the stem
is a bare convolution (and max-pool) and an identity shortcut carries it unchanged, as every other
identity shortcut does.

:class:`PreActResNet` is also the trunk of the CIFAR wide ResNets (:mod:`companion.models.wrn`),
whose block is this one with dropout between the two convolutions.

Introduced in chapter 8, *ResNet variants*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from companion._checks import check_positive_int, check_tensor
from companion.models._input import check_images
from companion.models.resnet import RESNET18_LAYERS, RESNET_WIDTHS, conv1x1, conv3x3


class PreActBlock(nn.Module):
    """``x + conv2(dropout(relu(bn2(conv1(relu(bn1(x)))))))``; the shortcut is a 1x1 convolution when the shape changes.

    Args:
        in_channels: channels of the input.
        channels: channels of both convolutions and of the output.
        stride: stride of the first convolution (and of the projection shortcut).
        dropout: dropout probability between the two convolutions (wide ResNets use 0.3; 0 for none).

    Shapes:
        ``(N, in_channels, H, W) -> (N, channels, ceil(H / stride), ceil(W / stride))``.
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(channels, channels)
        self.relu = nn.ReLU(inplace=True)
        reshapes = stride != 1 or in_channels != channels
        self.shortcut = conv1x1(in_channels, channels, stride) if reshapes else None

    def forward(self, x: Tensor) -> Tensor:
        # Not in place: x itself is still needed by an identity shortcut.
        pre = torch.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return out + shortcut


class PreActResNet(nn.Module):
    """A stem convolution, stages of :class:`PreActBlock`, a final BN-ReLU, global average pooling, a linear classifier.

    Args:
        layers: blocks per stage; the first stage keeps the resolution, every later one halves it.
        widths: channels of each stage (one per entry of ``layers``).
        num_classes: outputs of the classifier.
        stem_channels: output channels of the stem (default ``widths[0]``; wide ResNets use 16).
        in_channels: channels of the input images.
        small_input: a 3x3/1 stem without max-pool (CIFAR style), instead of 7x7/2 and a 3x3/2 max-pool.
        dropout: dropout inside every block (see :class:`PreActBlock`).
        block: builds a block from ``(in_channels, channels, stride)``; :class:`PreActBlock` with
            ``dropout`` if not given (wide ResNets pass other block types).

    ``features(x)``: ``(N, in_channels, H, W) -> (N, widths[-1], h, w)``, after the final BN-ReLU.
    ``head(z)``: ``(N, widths[-1], h, w) -> (N, num_classes)``.
    """

    def __init__(self, layers: Sequence[int], widths: Sequence[int], num_classes: int = 1000, *,
                 stem_channels: int | None = None, in_channels: int = 3, small_input: bool = False,
                 dropout: float = 0.0, block: Callable[[int, int, int], nn.Module] | None = None) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(in_channels, "in_channels")
        if len(layers) == 0 or len(layers) != len(widths):
            raise ValueError(f"layers and widths must be non-empty and of the same length (one entry per stage), "
                             f"got {list(layers)} and {list(widths)}")
        for n in layers:
            check_positive_int(n, "every entry of layers")
        self.in_channels = in_channels
        self.name = f"PreActResNet({list(layers)}, widths={list(widths)})"

        stem = widths[0] if stem_channels is None else stem_channels
        if small_input:
            self.conv1: nn.Conv2d = conv3x3(in_channels, stem)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, stem, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

        if block is None:
            def block(c_in: int, c: int, s: int) -> nn.Module:
                return PreActBlock(c_in, c, s, dropout)

        channels = stem
        stages = []
        for i, (n, width) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(n):
                blocks.append(block(channels, width, stride if j == 0 else 1))
                channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_channels = channels

        self.bn = nn.BatchNorm2d(channels)  # the extra activation after the last block
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: Tensor) -> Tensor:
        """The final activated feature map: ``(N, in_channels, H, W) -> (N, C, h, w)``."""
        check_images(x, channels=self.in_channels, model=self.name)
        x = self.maxpool(self.conv1(x))
        return self.relu(self.bn(self.stages(x)))

    def head(self, x: Tensor) -> Tensor:
        """Global average pooling and the classifier: ``(N, C, h, w) -> (N, num_classes)``."""
        check_tensor(x, "x", ndim=4, shape_hint=f"(N, {self.out_channels}, h, w)", floating=True)
        x = torch.flatten(self.avgpool(x), 1)  # (N, C)
        return self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W) -> (N, num_classes)`` logits."""
        return self.head(self.features(x))


def preact_resnet18(num_classes: int = 1000, *, in_channels: int = 3, small_input: bool = False) -> PreActResNet:
    """Pre-activation ResNet-18: ResNet-18's table ``(2, 2, 2, 2)`` and widths with pre-activation blocks.

    11,687,720 parameters for 1000 classes, 1,792 fewer than ResNet-18: no batch norm after the stem
    or in the shortcuts, a stage's first batch norm on the narrower input, and one final batch norm.
    """
    return PreActResNet(RESNET18_LAYERS, RESNET_WIDTHS, num_classes, in_channels=in_channels,
                        small_input=small_input)


__all__ = ["PreActBlock", "PreActResNet", "preact_resnet18"]
