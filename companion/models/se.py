"""Squeeze-and-excitation: channel attention, and SE-ResNet-50.

Hu, Shen, Albanie, Sun & Wu, *Squeeze-and-Excitation Networks*, CVPR 2018
(https://arxiv.org/abs/1709.01507). An SE block rescales each channel of a feature map by a gate
in (0, 1) computed from the whole map:

* squeeze: global average pooling, ``z_c = mean_{i,j} x[c, i, j]``;
* excitation: ``s = sigmoid(W2 relu(W1 z))`` with ``W1`` reducing ``C`` channels to ``C / r``
  (reduction ``r = 16``) and ``W2`` restoring them;
* scale: ``y[c] = s_c * x[c]``.

SE-ResNet-50 puts one SE block in every bottleneck, on the residual branch just before the
addition (the paper's Figure 3), which adds about 2.5M parameters to ResNet-50's 25.6M: 28.1M in
all, the figure the paper reports for ``r = 16``.

Deviations from the paper: the two fully connected layers are written as 1x1 convolutions, the same
map on a 1x1 feature map, so that an :class:`SEBlock` loads the weights of torchvision's
``torchvision.ops.SqueezeExcitation`` (``fc1``, ``fc2``). SE-ResNet-50 is built on torchvision's
ResNet-50 (v1.5: the stride on the 3x3 convolution, see :mod:`companion.models.resnet`).

Introduced in chapter 11, *Attention in vision*.
"""

from __future__ import annotations

from torch import Tensor, nn

from companion._checks import check_positive_int, check_tensor
from companion.models.resnet import RESNET50_LAYERS, BasicBlock, Bottleneck, ResNet


class SEBlock(nn.Module):
    """Squeeze-and-excitation: ``y = x * sigmoid(fc2(relu(fc1(mean_hw(x)))))``, one gate per channel.

    Args:
        channels: channels ``C`` of the feature map.
        reduction: ``r``; the bottleneck of the excitation has ``C // r`` channels (at least 1).

    Shapes:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        check_positive_int(channels, "channels")
        check_positive_int(reduction, "reduction")
        self.channels = channels
        squeezed = max(1, channels // reduction)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)  # W1: a fully connected layer on the (C, 1, 1) summary
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)  # W2
        self.sigmoid = nn.Sigmoid()

    def gates(self, x: Tensor) -> Tensor:
        """The per-channel gates ``s``: ``(N, C, H, W) -> (N, C, 1, 1)``, values in (0, 1)."""
        check_tensor(x, "x", ndim=4, shape_hint=f"(N, {self.channels}, H, W)", floating=True)
        if x.shape[1] != self.channels:
            raise ValueError(f"SEBlock({self.channels}) expects x of shape (N, {self.channels}, H, W), "
                             f"got {tuple(x.shape)}")
        z = self.avgpool(x)                                   # squeeze: (N, C, 1, 1)
        return self.sigmoid(self.fc2(self.relu(self.fc1(z))))  # excitation: (N, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gates(x)  # (N, C, H, W) * (N, C, 1, 1): one gate per channel


class SEBottleneck(Bottleneck):
    """A ResNet bottleneck whose residual branch ends in an :class:`SEBlock` (reduction 16).

    Takes the arguments of :class:`~companion.models.resnet.Bottleneck`.
    """

    reduction = 16

    def __init__(self, in_channels: int, channels: int, stride: int = 1, groups: int = 1,
                 width_per_group: int = 64, residual: bool = True) -> None:
        super().__init__(in_channels, channels, stride, groups, width_per_group, residual)
        self.se = SEBlock(channels * self.expansion, self.reduction)

    def branch(self, x: Tensor) -> Tensor:
        """The bottleneck's ``F(x)``, recalibrated channel by channel before the addition."""
        return self.se(super().branch(x))


class SEBasicBlock(BasicBlock):
    """A ResNet basic block whose residual branch ends in an :class:`SEBlock` (reduction 16).

    Not in the paper, which adds SE to ResNet-50 and deeper; it gives small SE-ResNets
    (``ResNet(SEBasicBlock, ...)``) to compare with the same network built from
    :class:`~companion.models.resnet.BasicBlock`. Takes the arguments of ``BasicBlock``.
    """

    reduction = 16

    def __init__(self, in_channels: int, channels: int, stride: int = 1, groups: int = 1,
                 width_per_group: int = 64, residual: bool = True) -> None:
        super().__init__(in_channels, channels, stride, groups, width_per_group, residual)
        self.se = SEBlock(channels, self.reduction)

    def branch(self, x: Tensor) -> Tensor:
        """The basic block's ``F(x)``, recalibrated channel by channel before the addition."""
        return self.se(super().branch(x))


def se_resnet50(num_classes: int = 1000, *, in_channels: int = 3, small_input: bool = False) -> ResNet:
    """SE-ResNet-50: ResNet-50 with an SE block in every bottleneck; 28,088,024 parameters (the paper: 28.1M).

    Its ``features``/``head`` halves and options are those of
    :class:`~companion.models.resnet.ResNet`.
    """
    return ResNet(SEBottleneck, RESNET50_LAYERS, num_classes, in_channels=in_channels, small_input=small_input)


__all__ = ["SEBasicBlock", "SEBlock", "SEBottleneck", "se_resnet50"]
