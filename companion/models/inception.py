"""Inception v3: factorised Inception modules, grid-size reductions and an auxiliary classifier.

Szegedy, Vanhoucke, Ioffe, Shlens & Wojna, *Rethinking the Inception Architecture for Computer
Vision*, CVPR 2016 (https://arxiv.org/abs/1512.00567). The paper's ideas, one block each:

* **factorise large kernels into small ones**: a 5x5 convolution sees as much as two 3x3 ones,
  which cost 18/25 of it (:class:`Inception35`, the paper's Figure 5);
* **factorise n x n into 1 x n then n x 1**: a 7x7 convolution becomes 1x7 + 7x1, 14/49 of the
  cost (:class:`Inception17`, Figure 6);
* **expand the filter bank** at the coarsest grid, with 1x3 and 3x1 convolutions side by side
  (:class:`Inception8`, Figure 7);
* **reduce the grid without a bottleneck**: a stride-2 convolution branch and a stride-2 pooling
  branch in parallel, concatenated (:class:`Reduction35to17`, :class:`Reduction17to8`, Figure 10);
* an **auxiliary classifier** on the 17x17 grid, which the paper finds acts as a regulariser
  (:class:`AuxClassifierV3`, Figure 8).

The class names give the grid size each block works at for a 299x299 input (35x35, 17x17, 8x8).

From the successor paper, Szegedy, Ioffe, Vanhoucke & Alemi, *Inception-v4, Inception-ResNet and
the Impact of Residual Connections on Learning*, AAAI 2017 (https://arxiv.org/abs/1602.07261):
:class:`InceptionResNetA`, the 35x35 module of Inception-ResNet-v2 (Figure 16): Inception branches,
concatenated, a 1x1 *linear* projection back to the input's width, and a residual addition with
the branch scaled down (Figure 20).
:func:`inception_v3` has torchvision's parameter names and shapes, so torchvision's ImageNet
weights load into it. Those weights come from TensorFlow's released model, which differs from the
paper's description (https://github.com/pytorch/vision/issues/798); we follow the released model:

* the 35x35 module keeps a 5x5 branch (1x1 to 48, then 5x5 to 64) beside the two-3x3 branch;
* the stem ends with a 1x1 convolution to 80 channels, a 3x3 one to 192 and a max-pool, where
  the paper's Table 1 lists three 3x3 convolutions;
* four 17x17 modules (``Mixed_6b`` to ``Mixed_6e``) where Table 1 lists five;
* the auxiliary classifier is the released one: 5x5/3 average pool, 1x1 convolution to 128,
  5x5 convolution to 768 (on the 5x5 pooled map, a fully connected layer by another name), linear.

Every convolution is followed by batch norm (``eps`` 0.001, TensorFlow's value) and ReLU
(:class:`~companion.models.googlenet.BasicConv2d`).

Label smoothing, the paper's other contribution, belongs to the loss, not to the network.

As in torchvision, a model in training mode returns ``InceptionOutputs(logits, aux_logits)``
(eval mode: the logits only), and ``transform_input=True`` maps ImageNet-normalised images to the
[-1, 1] scale the weights were trained on. Inputs must be at least 75x75; in training mode with
the auxiliary classifier, at least 299x299 (its 5x5/3 pool and 5x5 convolution need the 17x17 grid).

Introduced in chapter 6, *GoogLeNet and Inception v1-v4*.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion._checks import check_positive_int
from companion.models._input import check_images
from companion.models._shapes import Window, check_feature_map, min_input_size
from companion.models.googlenet import (BasicConv2d, ConvRow, PoolRow, build_stem, imagenet_to_unit_range,
                                        stem_windows)


class Inception35(nn.Module):
    """The 35x35 module (Figure 5): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | 3x3 avg-pool -> 1x1.

    Args:
        in_channels: channels of the input.
        pool_features: output channels of the pooling branch.

    Shapes:
        ``(N, in_channels, H, W) -> (N, 64 + 64 + 96 + pool_features, H, W)``.
    """

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)  # two 3x3 convolutions: a 5x5 window
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)
        self.out_channels = 64 + 64 + 96 + pool_features

    def forward(self, x: Tensor) -> Tensor:
        branches = [
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(self.pool(x)),
        ]
        return torch.cat(branches, dim=1)  # (N, 224 + pool_features, H, W)


class InceptionResNetA(nn.Module):
    """Inception-ResNet-A (Inception-ResNet-v2, Figure 16): ``relu(x + scale * up(branches(x)))``.

    Branches: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 (32, 32, 64 channels out), concatenated (128),
    then ``up``, a 1x1 convolution back to ``in_channels`` with a bias and *without* batch norm or
    ReLU (the paper's "1x1 Conv (320 Linear)"): the residual must be able to be negative and to
    match the input's width. ``scale`` multiplies the residual before the addition; the paper
    scales by 0.1 to 0.3, which kept its widest networks from dying early in training (section 3.3,
    Figure 20). Every other convolution is a :class:`~companion.models.googlenet.BasicConv2d`
    (conv -> BN -> ReLU): the paper's Figure 16 draws no batch norm, its released model has one
    after every convolution but the projection, which we follow. ``activate=False`` leaves out the
    ReLU after the addition (the released model does so in its very last residual block).

    Args:
        in_channels: channels of the input and of the output (320 in Inception-ResNet-v2).
        scale: factor of the residual branch before the addition.
        activate: apply the ReLU after the addition.

    Shapes:
        ``(N, in_channels, H, W) -> (N, in_channels, H, W)``.
    """

    def __init__(self, in_channels: int = 320, scale: float = 0.17, activate: bool = True) -> None:
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise ValueError(f"scale must be a positive number (the paper uses 0.1 to 0.3), got {scale!r}")
        self.scale, self.activate = float(scale), activate
        self.branch0 = BasicConv2d(in_channels, 32, 1)
        self.branch1 = nn.Sequential(BasicConv2d(in_channels, 32, 1), BasicConv2d(32, 32, 3, padding=1))
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, 32, 1), BasicConv2d(32, 48, 3, padding=1),
                                     BasicConv2d(48, 64, 3, padding=1))
        self.up = nn.Conv2d(32 + 32 + 64, in_channels, 1)  # linear: no batch norm, no ReLU

    def residual(self, x: Tensor) -> Tensor:
        """The unscaled residual ``up(branches(x))``: ``(N, C, H, W) -> (N, C, H, W)``."""
        branches = torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], dim=1)  # (N, 128, H, W)
        return self.up(branches)

    def forward(self, x: Tensor) -> Tensor:
        out = x + self.scale * self.residual(x)
        return F.relu(out) if self.activate else out


class Reduction35to17(nn.Module):
    """Grid reduction 35x35 -> 17x17 (Figure 10): 3x3/2 conv | 1x1 -> 3x3 -> 3x3/2 | 3x3/2 max-pool.

    Args:
        in_channels: channels of the input (they pass through the pooling branch unchanged).

    Shapes:
        ``(N, in_channels, H, W) -> (N, 384 + 96 + in_channels, (H - 3) // 2 + 1, (W - 3) // 2 + 1)``.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = 384 + 96 + in_channels

    def forward(self, x: Tensor) -> Tensor:
        branches = [
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.pool(x),
        ]
        return torch.cat(branches, dim=1)  # (N, 480 + in_channels, H', W')


class Inception17(nn.Module):
    """The 17x17 module (Figure 6): 7x7 convolutions factorised into 1x7 and 7x1.

    Branches: 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | 3x3 avg-pool -> 1x1.

    Args:
        in_channels: channels of the input.
        channels_7x7: width inside the factorised branches (128, 160 or 192 in Inception v3).

    Shapes:
        ``(N, in_channels, H, W) -> (N, 768, H, W)``.
    """

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, 192, 1)
        self.out_channels = 4 * 192

    def forward(self, x: Tensor) -> Tensor:
        seven = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = conv(double)
        branches = [self.branch1x1(x), seven, double, self.branch_pool(self.pool(x))]
        return torch.cat(branches, dim=1)  # (N, 768, H, W)


class Reduction17to8(nn.Module):
    """Grid reduction 17x17 -> 8x8: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | 3x3/2 max-pool.

    Args:
        in_channels: channels of the input (they pass through the pooling branch unchanged).

    Shapes:
        ``(N, in_channels, H, W) -> (N, 320 + 192 + in_channels, (H - 3) // 2 + 1, (W - 3) // 2 + 1)``.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = 320 + 192 + in_channels

    def forward(self, x: Tensor) -> Tensor:
        seven = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            seven = conv(seven)
        branches = [self.branch3x3_2(self.branch3x3_1(x)), seven, self.pool(x)]
        return torch.cat(branches, dim=1)  # (N, 512 + in_channels, H', W')


class Inception8(nn.Module):
    """The 8x8 module (Figure 7), with the filter bank expanded: each 3x3 path ends in a 1x3 and a 3x1 side by side.

    Branches: 1x1 | 1x1 -> (1x3, 3x1) | 1x1 -> 3x3 -> (1x3, 3x1) | 3x3 avg-pool -> 1x1.

    Args:
        in_channels: channels of the input.

    Shapes:
        ``(N, in_channels, H, W) -> (N, 2048, H, W)``.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, 192, 1)
        self.out_channels = 320 + 2 * 384 + 2 * 384 + 192

    def forward(self, x: Tensor) -> Tensor:
        single = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branches = [
            self.branch1x1(x),
            self.branch3x3_2a(single), self.branch3x3_2b(single),
            self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double),
            self.branch_pool(self.pool(x)),
        ]
        return torch.cat(branches, dim=1)  # (N, 2048, H, W)


class AuxClassifierV3(nn.Module):
    """Inception v3's auxiliary classifier: 5x5/3 average pool, 1x1 conv to 128, 5x5 conv to 768, linear.

    Args:
        in_channels: channels of the 17x17 map it reads (768).
        num_classes: outputs.

    Shapes:
        ``(N, in_channels, h, w) -> (N, num_classes)``, for ``h, w >= 17``.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv0 = BasicConv2d(in_channels, 128, 1)
        self.conv1 = BasicConv2d(128, 768, 5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(self.conv0(self.pool(x)))  # (N, 768, h', w'): 1x1 for a 17x17 input
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (N, 768)
        return self.fc(x)


class InceptionOutputs(NamedTuple):
    """What an Inception-v3 in training mode with ``aux_logits=True`` returns."""

    logits: Tensor
    aux_logits: Tensor


#: The stem: 3x3 convolutions and max-pools before the first Inception module (sizes for 299x299).
INCEPTION_V3_STEM: tuple[ConvRow | PoolRow, ...] = (
    ConvRow("Conv2d_1a_3x3", 32, 3, stride=2),    # 149x149x32
    ConvRow("Conv2d_2a_3x3", 32, 3),              # 147x147x32
    ConvRow("Conv2d_2b_3x3", 64, 3, padding=1),   # 147x147x64
    PoolRow("maxpool1", 3, ceil_mode=False),      # 73x73x64
    ConvRow("Conv2d_3b_1x1", 80, 1),              # 73x73x80
    ConvRow("Conv2d_4a_3x3", 192, 3),             # 71x71x192
    PoolRow("maxpool2", 3, ceil_mode=False),      # 35x35x192
)

MixedBlock = type[Inception35] | type[Reduction35to17] | type[Inception17] | type[Reduction17to8] | type[Inception8]

#: The Inception modules ("Mixed" in TensorFlow's names), in order; the argument is ``pool_features``
#: for :class:`Inception35`, ``channels_7x7`` for :class:`Inception17`, nothing for the others.
INCEPTION_V3: tuple[tuple[str, MixedBlock, int | None], ...] = (
    # name,      block,           argument        output for 299x299
    ("Mixed_5b", Inception35, 32),                # 35x35x256
    ("Mixed_5c", Inception35, 64),                # 35x35x288
    ("Mixed_5d", Inception35, 64),                # 35x35x288
    ("Mixed_6a", Reduction35to17, None),          # 17x17x768
    ("Mixed_6b", Inception17, 128),               # 17x17x768
    ("Mixed_6c", Inception17, 160),               # 17x17x768
    ("Mixed_6d", Inception17, 160),               # 17x17x768
    ("Mixed_6e", Inception17, 192),               # 17x17x768, read by the auxiliary classifier
    ("Mixed_7a", Reduction17to8, None),           # 8x8x1280
    ("Mixed_7b", Inception8, None),               # 8x8x2048
    ("Mixed_7c", Inception8, None),               # 8x8x2048
)

#: The module whose output the auxiliary classifier reads.
AUX_INPUT = "Mixed_6e"

#: The size-changing layers of the two grid reductions (a 3x3/2 convolution and a 3x3/2 pool each).
REDUCTION = Window(kernel=3, stride=2)
#: The auxiliary classifier's 5x5/3 average pool and 5x5 convolution.
AUX_WINDOWS = (Window(kernel=5, stride=3), Window(kernel=5))


class InceptionV3(nn.Module):
    """Inception v3: the stem, the table of Inception modules, global average pooling, dropout, a linear layer.

    Args:
        num_classes: outputs of the classifier (and of the auxiliary classifier).
        in_channels: channels of the input images.
        aux_logits: build the auxiliary classifier (used in training mode only).
        transform_input: map ImageNet-normalised input to [-1, 1] first (for torchvision's weights).
        dropout: dropout probability before the classifier.

    ``features(x)``: ``(N, in_channels, H, W) -> (N, 2048, h, w)`` (8x8 for 299x299, 1x1 for
    75x75). ``head(z)``: ``(N, 2048, h, w) -> (N, num_classes)``. ``forward(x)``: the logits, or
    :class:`InceptionOutputs` in training mode with ``aux_logits``.
    """

    def __init__(self, num_classes: int = 1000, *, in_channels: int = 3, aux_logits: bool = True,
                 transform_input: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(in_channels, "in_channels")
        if transform_input and in_channels != 3:
            raise ValueError(f"transform_input=True rescales the 3 ImageNet channels, but in_channels={in_channels}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.in_channels, self.aux_logits, self.transform_input = in_channels, aux_logits, transform_input

        self.stem_names: list[str] = []
        for name, module in build_stem(INCEPTION_V3_STEM, in_channels):
            self.add_module(name, module)  # torchvision's names, so that the weights load
            self.stem_names.append(name)
        self.mixed_names: list[str] = []
        channels = 192
        for name, block, argument in INCEPTION_V3:
            module = block(channels) if argument is None else block(channels, argument)  # type: ignore[call-arg]
            self.add_module(name, module)
            self.mixed_names.append(name)
            if name == AUX_INPUT:
                aux_channels = module.out_channels
            channels = module.out_channels
        self.out_channels = channels

        windows = stem_windows(INCEPTION_V3_STEM) + [REDUCTION]  # up to the 17x17 grid
        self.min_size_aux = min_input_size(windows + list(AUX_WINDOWS))  # 299
        self.min_size = min_input_size(windows + [REDUCTION])  # 75

        self.AuxLogits = AuxClassifierV3(aux_channels, num_classes) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation for the convolutions, N(0, 0.01) for the linear layers, batch norms as the identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def _trunk(self, x: Tensor, with_aux: bool) -> tuple[Tensor, Tensor | None]:
        """The feature map and, if ``with_aux``, the auxiliary classifier's logits."""
        check_images(x, channels=self.in_channels, min_size=self.min_size, model="Inception-v3")
        if with_aux:
            check_images(x, channels=self.in_channels, min_size=self.min_size_aux,
                         model="Inception-v3 in training mode with aux_logits=True (or call .eval())")
        if self.transform_input:
            x = imagenet_to_unit_range(x)
        for name in self.stem_names:
            x = self.get_submodule(name)(x)
        aux = None
        for name in self.mixed_names:
            x = self.get_submodule(name)(x)
            if with_aux and name == AUX_INPUT:
                assert self.AuxLogits is not None
                aux = self.AuxLogits(x)
        return x, aux

    def features(self, x: Tensor) -> Tensor:
        """The last Inception module's output: ``(N, in_channels, H, W) -> (N, 2048, h, w)``."""
        return self._trunk(x, with_aux=False)[0]

    def head(self, z: Tensor) -> Tensor:
        """Global average pooling, dropout and the classifier: ``(N, 2048, h, w) -> (N, num_classes)``."""
        check_feature_map(z, channels=self.out_channels, model="Inception-v3")
        z = torch.flatten(self.avgpool(z), 1)  # (N, 2048)
        return self.fc(self.dropout(z))

    def forward(self, x: Tensor) -> Tensor | InceptionOutputs:
        """Logits ``(N, num_classes)``; in training mode with ``aux_logits``, :class:`InceptionOutputs`."""
        with_aux = self.training and self.aux_logits
        z, aux = self._trunk(x, with_aux)
        logits = self.head(z)
        if with_aux:
            assert aux is not None
            return InceptionOutputs(logits, aux)
        return logits


def inception_v3(num_classes: int = 1000, *, in_channels: int = 3, aux_logits: bool = True,
                 transform_input: bool = False, dropout: float = 0.5) -> InceptionV3:
    """Inception v3 as torchvision builds it: 27,161,264 parameters for 1000 classes with the auxiliary
    classifier, 23,834,568 without; inputs of at least 75x75 (299x299 to train with the auxiliary classifier)."""
    return InceptionV3(num_classes, in_channels=in_channels, aux_logits=aux_logits,
                       transform_input=transform_input, dropout=dropout)


__all__ = ["AUX_INPUT", "INCEPTION_V3", "INCEPTION_V3_STEM", "AuxClassifierV3", "Inception17", "Inception35",
           "Inception8", "InceptionOutputs", "InceptionResNetA", "InceptionV3", "Reduction17to8", "Reduction35to17", "inception_v3"]
