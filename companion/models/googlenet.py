"""GoogLeNet (Inception v1): Inception modules from a table, and its two auxiliary classifiers.

Szegedy et al., *Going Deeper with Convolutions*, CVPR 2015 (https://arxiv.org/abs/1409.4842).
An Inception module runs four branches side by side on the same input and concatenates their
outputs along the channels: a 1x1 convolution, a 3x3 and a 5x5 convolution each behind a 1x1
"reduce" convolution that first cuts the channels (the bottleneck that makes the module
affordable), and a 3x3 max-pool followed by a 1x1 projection. Nine modules, with max-pools
between the stages, make the network; the widths of every module are the paper's Table 1, which
is :data:`GOOGLENET` here. Two auxiliary classifiers read the outputs of modules 4a and 4d; during
training their losses (weighted 0.3 in the paper) are added to the main loss, to push gradient
into the lower layers.

:func:`googlenet` has torchvision's parameter names and shapes, so torchvision's ImageNet weights
load into it. torchvision's network is a port of TensorFlow's Inception v1, which differs from
the paper in ways that we keep, because the weights depend on them:

* batch norm after every convolution (the paper predates batch norm; no local response norm);
* the "5x5" branch uses a 3x3 convolution (a slip in that port, kept since the weights were
  trained with it: https://github.com/pytorch/vision/issues/906). ``kernel_5x5=5`` builds the
  paper's module, which then no longer loads those weights;
* the max-pool between stages 4 and 5 is 2x2 instead of 3x3 (stride 2 in both);
* the auxiliary classifiers average-pool to 4x4 with an adaptive pool (the paper: 5x5 windows
  with stride 3, which give 4x4 from the 14x14 map of a 224x224 input).

As in torchvision, a model in training mode returns ``GoogLeNetOutputs(logits, aux_logits2,
aux_logits1)`` (the auxiliary heads are skipped in eval mode, where it returns the logits only),
and ``transform_input=True`` maps ImageNet-normalised images to the [-1, 1] scale the ported
weights were trained on. To load torchvision's pretrained GoogLeNet, which has no auxiliary heads,
build ``googlenet(aux_logits=False, transform_input=True)``.

The course's own option ``small_input=True`` replaces the 7x7/2 stem convolution and the max-pool
after it by one 3x3/1 convolution, for 28x28 and 32x32 images.

Introduced in chapter 6, *GoogLeNet and Inception v1-v4*.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion._checks import check_positive_int
from companion.models._input import check_images
from companion.models._shapes import Window, check_feature_map, min_input_size

#: The mean and standard deviation of ImageNet's RGB channels, which images are usually normalised with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConvRow(NamedTuple):
    """A stem convolution (with batch norm and ReLU): its module name, output channels and geometry."""

    name: str
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0


class PoolRow(NamedTuple):
    """A max-pool with stride 2 (``ceil_mode``: the last, partial window is kept)."""

    name: str
    kernel: int
    ceil_mode: bool = True


class InceptionRow(NamedTuple):
    """One Inception module: the output channels of its branches (a row of the paper's Table 1)."""

    name: str
    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int


#: The stem: the convolutions before the first Inception module (sizes for a 224x224 input).
GOOGLENET_STEM: tuple[ConvRow | PoolRow, ...] = (
    ConvRow("conv1", 64, 7, stride=2, padding=3),   # 112x112
    PoolRow("maxpool1", 3),                         # 56x56
    ConvRow("conv2", 64, 1),                        # the paper's "3x3 reduce"
    ConvRow("conv3", 192, 3, padding=1),            # 56x56x192
    PoolRow("maxpool2", 3),                         # 28x28
)

#: The stem for 28x28 and 32x32 images: one 3x3/1 convolution instead of the 7x7/2 one and its max-pool.
GOOGLENET_SMALL_STEM: tuple[ConvRow | PoolRow, ...] = (
    ConvRow("conv1", 64, 3, padding=1),             # 28x28
    ConvRow("conv2", 64, 1),
    ConvRow("conv3", 192, 3, padding=1),
    PoolRow("maxpool2", 3),                         # 14x14
)

#: Table 1 of the paper: the Inception modules, and the max-pools between stages (sizes for 224x224).
GOOGLENET: tuple[InceptionRow | PoolRow, ...] = (
    #            name           #1x1  #3x3 reduce  #3x3  #5x5 reduce  #5x5  pool proj      output
    InceptionRow("inception3a",   64,    96,       128,     16,        32,     32),   # 28x28x256
    InceptionRow("inception3b",  128,   128,       192,     32,        96,     64),   # 28x28x480
    PoolRow("maxpool3", 3),                                                          # 14x14
    InceptionRow("inception4a",  192,    96,       208,     16,        48,     64),   # 14x14x512 -> aux1
    InceptionRow("inception4b",  160,   112,       224,     24,        64,     64),   # 14x14x512
    InceptionRow("inception4c",  128,   128,       256,     24,        64,     64),   # 14x14x512
    InceptionRow("inception4d",  112,   144,       288,     32,        64,     64),   # 14x14x528 -> aux2
    InceptionRow("inception4e",  256,   160,       320,     32,       128,    128),   # 14x14x832
    PoolRow("maxpool4", 2),                  # 7x7 (2x2 where the paper pools 3x3, see the module docstring)
    InceptionRow("inception5a",  256,   160,       320,     32,       128,    128),   # 7x7x832
    InceptionRow("inception5b",  384,   192,       384,     48,       128,    128),   # 7x7x1024
)

#: Which module's output each auxiliary classifier reads.
AUX_HEADS = {"aux1": "inception4a", "aux2": "inception4d"}


class BasicConv2d(nn.Module):
    """Convolution (no bias) -> batch norm -> ReLU, the unit every Inception network is made of.

    The batch norm's shift replaces the convolution's bias; its ``eps`` is 0.001, the value of the
    TensorFlow models whose weights torchvision ported.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size, stride, padding: as in ``nn.Conv2d`` (ints or ``(h, w)`` pairs, e.g. ``(1, 7)``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionBlock(nn.Module):
    """The Inception module of GoogLeNet (the paper's Figure 2b): four branches, concatenated.

    Args:
        in_channels: channels of the input.
        ch1x1: output channels of the 1x1 branch.
        ch3x3red, ch3x3: the 1x1 reduction before the 3x3 convolution, and the 3x3 convolution's outputs.
        ch5x5red, ch5x5: the same for the "5x5" branch.
        pool_proj: output channels of the 1x1 projection after the 3x3 max-pool.
        kernel_5x5: kernel of the "5x5" branch (odd): 3 in torchvision's weights, 5 in the paper.

    Shapes:
        ``(N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)``.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, kernel_5x5: int = 3) -> None:
        super().__init__()
        if kernel_5x5 % 2 == 0 or kernel_5x5 < 1:
            raise ValueError(f"kernel_5x5 must be odd (so that padding keeps the size), got {kernel_5x5!r}")
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, 1),
                                     BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, 1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_5x5, padding=kernel_5x5 // 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]  # each (N, c_i, H, W)
        return torch.cat(branches, dim=1)  # (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)


class NaiveInceptionBlock(nn.Module):
    """The "naive" Inception module (the paper's Figure 2a): no 1x1 reductions, no pool projection.

    A 1x1, a 3x3 and a 5x5 convolution read the input directly, and a 3x3 max-pool passes all the
    input channels through; the four are concatenated. The paper shows it to explain why the real
    module (:class:`InceptionBlock`) puts 1x1 convolutions in front: here the 5x5 convolution costs
    ``25 * in_channels * ch5x5`` multiply-adds per position, and the output always has more channels
    than the input, so stacked modules grow without bound. Units are :class:`BasicConv2d`, as in
    :class:`InceptionBlock`, so that the two can be compared layer for layer.

    Args:
        in_channels: channels of the input.
        ch1x1, ch3x3, ch5x5: output channels of the three convolutions.
        kernel_5x5: kernel of the "5x5" branch (odd; 5 as in the paper).

    Shapes:
        ``(N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + in_channels, H, W)``.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3: int, ch5x5: int, kernel_5x5: int = 5) -> None:
        super().__init__()
        if kernel_5x5 % 2 == 0 or kernel_5x5 < 1:
            raise ValueError(f"kernel_5x5 must be odd (so that padding keeps the size), got {kernel_5x5!r}")
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch2 = BasicConv2d(in_channels, ch3x3, 3, padding=1)
        self.branch3 = BasicConv2d(in_channels, ch5x5, kernel_5x5, padding=kernel_5x5 // 2)
        self.branch4 = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + in_channels

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]  # each (N, c_i, H, W)
        return torch.cat(branches, dim=1)  # (N, ch1x1 + ch3x3 + ch5x5 + in_channels, H, W)


class AuxClassifier(nn.Module):
    """GoogLeNet's auxiliary classifier: 4x4 average pool, 1x1 conv to 128, linear 1024, dropout, linear.

    Args:
        in_channels: channels of the feature map it reads (512 after 4a, 528 after 4d).
        num_classes: outputs.
        dropout: dropout probability before the last layer (0.7 in the paper).

    Shapes:
        ``(N, in_channels, h, w) -> (N, num_classes)``, for any ``h, w >= 1``.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))  # (N, 128, 4, 4)
        x = torch.flatten(x, 1)  # (N, 2048)
        x = self.dropout(F.relu(self.fc1(x), inplace=True))  # (N, 1024)
        return self.fc2(x)


class GoogLeNetOutputs(NamedTuple):
    """What a GoogLeNet in training mode with ``aux_logits=True`` returns (torchvision's order)."""

    logits: Tensor
    aux_logits2: Tensor
    aux_logits1: Tensor


def imagenet_to_unit_range(x: Tensor) -> Tensor:
    """Map images normalised with the ImageNet mean and std to the [-1, 1] scale ``(pixel - 0.5) / 0.5``.

    ``x = (pixel - mean) / std``, so ``(pixel - 0.5) / 0.5 = x * std / 0.5 + (mean - 0.5) / 0.5``.
    What ``transform_input=True`` does, for weights trained on [-1, 1] images.

    Args:
        x: ``Tensor[N, 3, H, W]``.

    Returns:
        ``Tensor[N, 3, H, W]``.
    """
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x * (std / 0.5) + (mean - 0.5) / 0.5  # (1, 3, 1, 1) broadcasts over (N, 3, H, W)


def stem_windows(stem: Sequence[ConvRow | PoolRow]) -> list[Window]:
    """The size-changing layers of a stem table, for :func:`~companion.models._shapes.min_input_size`."""
    return [Window(row.kernel, row.stride, row.padding) if isinstance(row, ConvRow)
            else Window(row.kernel, 2, 0, row.ceil_mode) for row in stem]


def build_stem(stem: Sequence[ConvRow | PoolRow], in_channels: int) -> list[tuple[str, nn.Module]]:
    """Named ``BasicConv2d`` and ``MaxPool2d`` modules from a stem table."""
    modules: list[tuple[str, nn.Module]] = []
    channels = in_channels
    for row in stem:
        if isinstance(row, ConvRow):
            modules.append((row.name, BasicConv2d(channels, row.out_channels, row.kernel, row.stride, row.padding)))
            channels = row.out_channels
        else:
            modules.append((row.name, nn.MaxPool2d(row.kernel, stride=2, ceil_mode=row.ceil_mode)))
    return modules


class GoogLeNet(nn.Module):
    """GoogLeNet from a stem table and a table of Inception modules and max-pools.

    Args:
        config: the Inception modules and pools, :data:`GOOGLENET` (or your own smaller table; with
            ``aux_logits`` it must have the modules :data:`AUX_HEADS` reads).
        num_classes: outputs of the classifier (and of the auxiliary classifiers).
        in_channels: channels of the input images.
        aux_logits: build the two auxiliary classifiers (used in training mode only).
        transform_input: map ImageNet-normalised input to [-1, 1] first (for torchvision's weights).
        small_input: the 3x3/1 stem of :data:`GOOGLENET_SMALL_STEM`, for 28x28 or 32x32 images.
        dropout, dropout_aux: dropout probabilities before the classifier and in the auxiliary ones.
        kernel_5x5: kernel of each module's "5x5" branch (3: torchvision's, 5: the paper's).

    ``features(x)``: ``(N, in_channels, H, W) -> (N, 1024, h, w)`` (7x7 for 224x224, 4x4 for 28x28
    with ``small_input``). ``head(z)``: ``(N, 1024, h, w) -> (N, num_classes)``. ``forward(x)``: the
    logits, or :class:`GoogLeNetOutputs` in training mode with ``aux_logits``.
    """

    def __init__(self, config: Sequence[InceptionRow | PoolRow] = GOOGLENET, num_classes: int = 1000, *,
                 in_channels: int = 3, aux_logits: bool = True, transform_input: bool = False,
                 small_input: bool = False, dropout: float = 0.2, dropout_aux: float = 0.7,
                 kernel_5x5: int = 3) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(in_channels, "in_channels")
        if transform_input and in_channels != 3:
            raise ValueError(f"transform_input=True rescales the 3 ImageNet channels, but in_channels={in_channels}")
        for p, name in ((dropout, "dropout"), (dropout_aux, "dropout_aux")):
            if not 0 <= p < 1:
                raise ValueError(f"{name} must be a probability in [0, 1), got {p!r}")
        names = {row.name for row in config}
        if aux_logits and not set(AUX_HEADS.values()) <= names:
            raise ValueError(f"aux_logits=True needs the modules {sorted(AUX_HEADS.values())} in config; "
                             "pass aux_logits=False for a table without them")
        self.in_channels, self.aux_logits, self.transform_input = in_channels, aux_logits, transform_input

        stem = GOOGLENET_SMALL_STEM if small_input else GOOGLENET_STEM
        self.stem_names = []
        for name, module in build_stem(stem, in_channels):
            self.add_module(name, module)  # conv1, maxpool1, ...: torchvision's names, so that the weights load
            self.stem_names.append(name)
        windows = stem_windows(stem)

        channels = 192
        channels_after: dict[str, int] = {}
        for row in config:
            if isinstance(row, InceptionRow):
                block = InceptionBlock(channels, *row[1:], kernel_5x5=kernel_5x5)
                self.add_module(row.name, block)
                channels = block.out_channels
            else:
                self.add_module(row.name, nn.MaxPool2d(row.kernel, stride=2, ceil_mode=row.ceil_mode))
                windows.append(Window(row.kernel, 2, 0, row.ceil_mode))
            channels_after[row.name] = channels
        self.body_names = [row.name for row in config]
        self.out_channels = channels
        self.min_size = min_input_size(windows)  # 15 for GoogLeNet, 6 with small_input

        self.aux1: AuxClassifier | None = None
        self.aux2: AuxClassifier | None = None
        if aux_logits:
            self.aux1 = AuxClassifier(channels_after[AUX_HEADS["aux1"]], num_classes, dropout_aux)
            self.aux2 = AuxClassifier(channels_after[AUX_HEADS["aux2"]], num_classes, dropout_aux)
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

    def _trunk(self, x: Tensor, with_aux: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """The feature map and, if ``with_aux``, the auxiliary classifiers' logits by name."""
        check_images(x, channels=self.in_channels, min_size=self.min_size, model="GoogLeNet")
        if self.transform_input:
            x = imagenet_to_unit_range(x)
        for name in self.stem_names:
            x = self.get_submodule(name)(x)
        aux: dict[str, Tensor] = {}
        for name in self.body_names:
            x = self.get_submodule(name)(x)
            for aux_name, reads in AUX_HEADS.items():
                if with_aux and reads == name:
                    aux[aux_name] = self.get_submodule(aux_name)(x)
        return x, aux

    def features(self, x: Tensor) -> Tensor:
        """The last Inception module's output: ``(N, in_channels, H, W) -> (N, 1024, h, w)``."""
        return self._trunk(x, with_aux=False)[0]

    def head(self, z: Tensor) -> Tensor:
        """Global average pooling, dropout and the classifier: ``(N, 1024, h, w) -> (N, num_classes)``."""
        check_feature_map(z, channels=self.out_channels, model="GoogLeNet")
        z = torch.flatten(self.avgpool(z), 1)  # (N, 1024)
        return self.fc(self.dropout(z))

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        """Logits ``(N, num_classes)``; in training mode with ``aux_logits``, :class:`GoogLeNetOutputs`."""
        with_aux = self.training and self.aux_logits
        z, aux = self._trunk(x, with_aux)
        logits = self.head(z)
        if with_aux:
            return GoogLeNetOutputs(logits, aux["aux2"], aux["aux1"])
        return logits


def googlenet(num_classes: int = 1000, *, in_channels: int = 3, aux_logits: bool = True,
              transform_input: bool = False, small_input: bool = False, dropout: float = 0.2,
              dropout_aux: float = 0.7) -> GoogLeNet:
    """GoogLeNet as torchvision builds it: 13,004,888 parameters for 1000 classes with the auxiliary
    classifiers, 6,624,904 without (``aux_logits=False``); inputs of at least 15x15."""
    return GoogLeNet(GOOGLENET, num_classes, in_channels=in_channels, aux_logits=aux_logits,
                     transform_input=transform_input, small_input=small_input, dropout=dropout,
                     dropout_aux=dropout_aux)


__all__ = ["AUX_HEADS", "GOOGLENET", "GOOGLENET_SMALL_STEM", "GOOGLENET_STEM", "IMAGENET_MEAN", "IMAGENET_STD",
           "AuxClassifier", "BasicConv2d", "ConvRow", "GoogLeNet", "GoogLeNetOutputs", "InceptionBlock",
           "InceptionRow", "NaiveInceptionBlock", "PoolRow", "build_stem", "googlenet", "imagenet_to_unit_range",
           "stem_windows"]
