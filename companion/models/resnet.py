"""ResNet, ResNeXt and wide ResNet, weight-compatible with torchvision's.

* ResNet: He, Zhang, Ren & Sun, *Deep Residual Learning for Image Recognition*, CVPR 2016
  (https://arxiv.org/abs/1512.03385). A stage of blocks learns a residual ``F(x)`` and adds the
  input back, ``y = relu(F(x) + x)``; depth is a table of blocks per stage (the paper's Table 1).
* ResNeXt: Xie, Girshick, Dollár, Tu & He, *Aggregated Residual Transformations for Deep Neural
  Networks*, CVPR 2017 (https://arxiv.org/abs/1611.05431): the bottleneck's 3x3 convolution is
  split into ``groups`` paths ("cardinality") of ``width_per_group`` channels each.
* Wide ResNet-50-2: the ImageNet wide network of Zagoruyko & Komodakis, *Wide Residual Networks*,
  BMVC 2016 (https://arxiv.org/abs/1605.07146): the bottleneck's inner width doubled. (Their
  CIFAR networks, WRN-d-k, are in :mod:`companion.models.wrn`.)

Parameter names and shapes are torchvision's, so ``model.load_state_dict(torchvision_model.state_dict())``
works and the two compute the same function. Deviations from the paper, all as in torchvision:

* "ResNet v1.5": a bottleneck downsamples in its 3x3 convolution (``conv2``), where the paper puts
  the stride on the first 1x1 convolution. A 1x1 convolution with stride 2 ignores three pixels out
  of four; the 3x3 one sees them all, which is slightly more accurate on ImageNet (about 0.5% top-1
  by NVIDIA's measurements).
* Shortcuts that change shape are 1x1 convolutions followed by batch norm: the paper's option B,
  with the batch norm it puts after every convolution.

Two options are the course's own: ``small_input=True`` replaces the 7x7/2 stem and its max-pool
with one 3x3/1 convolution, as the paper's CIFAR networks do (Section 4.2), so that 28x28 and 32x32
images are not shrunk four times at once; ``residual=False`` drops every shortcut, which gives the
paper's "plain" networks of the degradation experiment (Figures 1, 4 and 6).

Introduced in chapter 7, *ResNet from scratch* (ResNeXt and wide ResNet in chapter 8).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from companion._checks import check_positive_int, check_tensor
from companion.models._input import check_images

# Blocks per stage (conv2_x .. conv5_x), the paper's Table 1. Each BasicBlock holds two
# convolutions and each Bottleneck three, so with the stem and the classifier:
RESNET18_LAYERS = (2, 2, 2, 2)   # BasicBlock: 1 + 2 * 8 + 1 = 18 layers
RESNET34_LAYERS = (3, 4, 6, 3)   # BasicBlock: 1 + 2 * 16 + 1 = 34 layers
RESNET50_LAYERS = (3, 4, 6, 3)   # Bottleneck: 1 + 3 * 16 + 1 = 50 layers

#: Channels of each stage's blocks (a bottleneck outputs 4x as many).
RESNET_WIDTHS = (64, 128, 256, 512)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (the batch norm that follows has its own shift)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """The shortcut of a block that changes shape: 1x1 convolution (with the block's stride) and batch norm."""
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    Args:
        in_channels: channels of the input.
        channels: channels of both convolutions and of the output (``expansion = 1``).
        stride: stride of the first convolution (2 halves the resolution at the start of a stage).
        groups, width_per_group: must be 1 and 64; they exist so that every block takes the same
            arguments (ResNeXt and wide ResNets use :class:`Bottleneck`).
        residual: ``False`` drops the shortcut (a "plain" block).

    Shapes:
        ``(N, in_channels, H, W) -> (N, channels, ceil(H / stride), ceil(W / stride))``.
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, groups: int = 1,
                 width_per_group: int = 64, residual: bool = True) -> None:
        super().__init__()
        if groups != 1 or width_per_group != 64:
            raise ValueError(f"BasicBlock supports only groups=1 and width_per_group=64, got {groups} and "
                             f"{width_per_group}; grouped and wide ResNets are built from Bottleneck")
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.residual = residual
        reshapes = stride != 1 or in_channels != channels
        self.downsample = projection(in_channels, channels, stride) if residual and reshapes else None

    def branch(self, x: Tensor) -> Tensor:
        """The residual ``F(x)``, before the addition."""
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch(x)
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), and a shortcut; grouped for ResNeXt, wider for WRN-50-2.

    The 3x3 convolution works at ``width = channels * width_per_group / 64 * groups`` channels:
    ``channels`` for ResNet-50 (``groups=1, width_per_group=64``), ``2 * channels`` in 32 groups
    for ResNeXt-50 32x4d (``groups=32, width_per_group=4``) and ``2 * channels`` in one group for
    wide ResNet-50-2 (``width_per_group=128``).

    Args:
        in_channels: channels of the input.
        channels: the block's base width; it outputs ``4 * channels`` (``expansion = 4``).
        stride: stride of the 3x3 convolution (ResNet v1.5; the paper strides the first 1x1).
        groups: groups of the 3x3 convolution (ResNeXt's cardinality).
        width_per_group: channels per group of the 3x3 convolution, for ``channels = 64``.
        residual: ``False`` drops the shortcut (a "plain" block).

    Shapes:
        ``(N, in_channels, H, W) -> (N, 4 * channels, ceil(H / stride), ceil(W / stride))``.
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, groups: int = 1,
                 width_per_group: int = 64, residual: bool = True) -> None:
        super().__init__()
        width = int(channels * (width_per_group / 64)) * groups
        out_channels = channels * self.expansion
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual
        reshapes = stride != 1 or in_channels != out_channels
        self.downsample = projection(in_channels, out_channels, stride) if residual and reshapes else None

    def branch(self, x: Tensor) -> Tensor:
        """The residual ``F(x)``, before the addition."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch(x)
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


Block = type[BasicBlock] | type[Bottleneck]


class ResNet(nn.Module):
    """A stem, one stage of blocks per entry of ``layers``, global average pooling and a linear classifier.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck` (or a subclass, e.g. an SE bottleneck).
        layers: blocks per stage, e.g. :data:`RESNET18_LAYERS`. The first stage keeps the
            resolution, every later one halves it in its first block.
        num_classes: outputs of the classifier.
        groups, width_per_group: passed to every block (see :class:`Bottleneck`).
        widths: base channels of each stage (one per entry of ``layers``); the stem outputs
            ``widths[0]``. ``BasicBlock``, ``(n, n, n)`` and ``(16, 32, 64)`` with ``small_input=True``
            give the paper's CIFAR ResNet-(6n+2), except that the shortcuts which change shape are
            projections where the paper pads with zeros (its option A).
        in_channels: channels of the input images (1 for Fashion-MNIST).
        small_input: a 3x3/1 stem without max-pool, for 28x28 or 32x32 images.
        residual: ``False`` builds the "plain" network (no shortcuts).

    ``features(x)``: ``(N, in_channels, H, W) -> (N, C, h, w)``, the last stage's map, with
    ``C = widths[-1] * block.expansion`` and ``h = ceil(H / 2 ** (len(layers) + 1))``, 32 for four stages
    (``ceil(H / 2 ** (len(layers) - 1))`` with ``small_input``). ``head(z)``: ``(N, C, h, w) -> (N, num_classes)``.
    """

    def __init__(self, block: Block, layers: Sequence[int], num_classes: int = 1000, *, groups: int = 1,
                 width_per_group: int = 64, widths: Sequence[int] = RESNET_WIDTHS, in_channels: int = 3,
                 small_input: bool = False, residual: bool = True) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(in_channels, "in_channels")
        if len(layers) == 0 or len(layers) != len(widths):
            raise ValueError(f"layers and widths must be non-empty and of the same length (one entry per stage), "
                             f"got {list(layers)} and {list(widths)}")
        for n in layers:
            check_positive_int(n, "every entry of layers")
        self.in_channels = in_channels
        self.name = f"{type(self).__name__}({block.__name__}, {list(layers)})"

        stem = widths[0]
        if small_input:
            self.conv1: nn.Conv2d = conv3x3(in_channels, stem)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, stem, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)

        # layer1 .. layer4: torchvision's names, so that the weights load.
        channels = stem
        for i, (n, width) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(n):
                blocks.append(block(channels, width, stride if j == 0 else 1, groups, width_per_group, residual))
                channels = width * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.stages = len(layers)
        self.out_channels = channels

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation for the convolutions (He et al., 2015), batch norm as the identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        """The last stage's feature map, before pooling: ``(N, in_channels, H, W) -> (N, C, h, w)``."""
        check_images(x, channels=self.in_channels, model=self.name)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.stages):
            x = getattr(self, f"layer{i + 1}")(x)  # the stages are named layer1, layer2, ...
        return x

    def head(self, x: Tensor) -> Tensor:
        """Global average pooling and the classifier: ``(N, C, h, w) -> (N, num_classes)``."""
        check_tensor(x, "x", ndim=4, shape_hint=f"(N, {self.out_channels}, h, w)", floating=True)
        x = torch.flatten(self.avgpool(x), 1)  # (N, C)
        return self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W) -> (N, num_classes)`` logits."""
        return self.head(self.features(x))


def resnet18(num_classes: int = 1000, *, in_channels: int = 3, small_input: bool = False) -> ResNet:
    """ResNet-18: BasicBlocks ``(2, 2, 2, 2)``; 11,689,512 parameters for 1000 classes (as torchvision's)."""
    return ResNet(BasicBlock, RESNET18_LAYERS, num_classes, in_channels=in_channels, small_input=small_input)


def resnet34(num_classes: int = 1000, *, in_channels: int = 3, small_input: bool = False) -> ResNet:
    """ResNet-34: BasicBlocks ``(3, 4, 6, 3)``; 21,797,672 parameters for 1000 classes."""
    return ResNet(BasicBlock, RESNET34_LAYERS, num_classes, in_channels=in_channels, small_input=small_input)


def resnet50(num_classes: int = 1000, *, in_channels: int = 3, small_input: bool = False) -> ResNet:
    """ResNet-50: Bottlenecks ``(3, 4, 6, 3)``; 25,557,032 parameters for 1000 classes."""
    return ResNet(Bottleneck, RESNET50_LAYERS, num_classes, in_channels=in_channels, small_input=small_input)


def resnext50_32x4d(num_classes: int = 1000, *, in_channels: int = 3, small_input: bool = False) -> ResNet:
    """ResNeXt-50 (32x4d): ResNet-50 with 32 groups of 4 channels in the first stage's 3x3 convolutions."""
    return ResNet(Bottleneck, RESNET50_LAYERS, num_classes, groups=32, width_per_group=4,
                  in_channels=in_channels, small_input=small_input)


def wide_resnet50_2(num_classes: int = 1000, *, in_channels: int = 3, small_input: bool = False) -> ResNet:
    """Wide ResNet-50-2: ResNet-50 with bottlenecks twice as wide inside (the 1x1 outputs keep their width)."""
    return ResNet(Bottleneck, RESNET50_LAYERS, num_classes, width_per_group=128,
                  in_channels=in_channels, small_input=small_input)


__all__ = ["RESNET18_LAYERS", "RESNET34_LAYERS", "RESNET50_LAYERS", "RESNET_WIDTHS", "BasicBlock", "Bottleneck",
           "ResNet", "conv1x1", "conv3x3", "projection", "resnet18", "resnet34", "resnet50", "resnext50_32x4d",
           "wide_resnet50_2"]
