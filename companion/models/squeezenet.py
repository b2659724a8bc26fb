"""SqueezeNet: AlexNet-level accuracy with 50x fewer parameters, from Fire modules.

Iandola, Han, Moskewicz, Ashraf, Dally & Keutzer, *SqueezeNet: AlexNet-level accuracy with 50x
fewer parameters and <0.5MB model size*, 2016 (https://arxiv.org/abs/1602.07360). Its three
strategies: use 1x1 filters where possible (9x fewer parameters than 3x3), cut the channels that
reach the 3x3 filters, and pool late so that the layers see large maps. A Fire module does the
first two: a 1x1 **squeeze** convolution to few channels, then an **expand** layer of 1x1 and 3x3
convolutions side by side, concatenated. There are no fully connected layers: a 1x1 convolution
makes one map per class and global average pooling turns each into a score.

:func:`squeezenet1_0` (the paper's Table 1) and :func:`squeezenet1_1` (the lighter "v1.1" of the
authors' repository, https://github.com/forresti/SqueezeNet/tree/master/SqueezeNet_v1.1: a 3x3
stem with 64 channels and earlier pooling, 2.4x less computation for the same accuracy) have
torchvision's parameter names and shapes, so its ImageNet weights load into them.

``bypass=True`` adds the paper's "simple bypass" (Section 6, Figure 2): ``x + fire(x)`` around
every Fire module whose input and output have the same number of channels, which are Fire 3, 5,
7 and 9. It adds no parameters (so the weights still load, though they were trained without it)
and the paper finds it 2.9 points more accurate in top-1. ``complex_bypass=True`` adds the paper's
"complex bypass" as well: a 1x1 convolution on the shortcut of every Fire module whose channels
differ (Fire 2, 4, 6 and 8: ``conv1x1(x) + fire(x)``), 341,248 more parameters for SqueezeNet 1.0;
the paper finds it *less* accurate than the simple bypass (58.8% against 60.4% top-1, its Table 3).
Its shortcut convolutions are named ``shortcut`` (torchvision has none, so its weights no longer
load strictly). The course's own ``small_input=True``
replaces the stem convolution by a 3x3/1 one, for 28x28 and 32x32 images.

The max-pools round their output size up (``ceil_mode=True``), as Caffe, in which the paper's
models were trained, does; dropout (50%) follows fire9, as in the paper.

Introduced in chapter 10, *Lightweight CNNs: MobileNet, SqueezeNet and EfficientNet*.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion._checks import check_positive_int
from companion.models._input import CheckedSequential
from companion.models._shapes import Window, check_feature_map, min_input_size

FireRow = tuple[int, int, int]


@dataclass(frozen=True)
class SqueezeNetConfig:
    """A SqueezeNet: its stem convolution and its sequence of Fire modules and max-pools.

    Attributes:
        stem_channels: output channels of the first convolution.
        stem_kernel: its kernel (stride 2, no padding).
        layers: ``(squeeze, expand1x1, expand3x3)`` per Fire module, ``"M"`` for a 3x3/2 max-pool.
    """

    stem_channels: int
    stem_kernel: int
    layers: tuple[FireRow | str, ...]


#: SqueezeNet 1.0, the paper's Table 1 (sizes for a 224x224 input).
SQUEEZENET1_0 = SqueezeNetConfig(stem_channels=96, stem_kernel=7, layers=(
    "M",                # 109x109 -> 54x54
    # squeeze, expand 1x1, expand 3x3
    (16, 64, 64),       # fire2: 96 -> 128 channels
    (16, 64, 64),       # fire3: 128 -> 128
    (32, 128, 128),     # fire4: 128 -> 256
    "M",                # 27x27
    (32, 128, 128),     # fire5: 256 -> 256
    (48, 192, 192),     # fire6: 256 -> 384
    (48, 192, 192),     # fire7: 384 -> 384
    (64, 256, 256),     # fire8: 384 -> 512
    "M",                # 13x13
    (64, 256, 256),     # fire9: 512 -> 512
))

#: SqueezeNet 1.1: a 3x3 stem with 64 channels, and the max-pools moved earlier.
SQUEEZENET1_1 = SqueezeNetConfig(stem_channels=64, stem_kernel=3, layers=(
    "M",                # 111x111 -> 55x55
    (16, 64, 64),       # fire2
    (16, 64, 64),       # fire3
    "M",                # 27x27
    (32, 128, 128),     # fire4
    (32, 128, 128),     # fire5
    "M",                # 13x13
    (48, 192, 192),     # fire6
    (48, 192, 192),     # fire7
    (64, 256, 256),     # fire8
    (64, 256, 256),     # fire9
))

#: The 3x3/2 max-pool ("M"), with Caffe's rounding up.
POOL = Window(kernel=3, stride=2, ceil_mode=True)


class Fire(nn.Module):
    """Squeeze with a 1x1 convolution, expand with 1x1 and 3x3 convolutions side by side; optionally add the input.

    Args:
        in_channels: channels of the input.
        squeeze: output channels of the 1x1 squeeze convolution (fewer than ``in_channels``).
        expand1x1, expand3x3: output channels of the two expand convolutions.
        bypass: the simple bypass, ``x + fire(x)`` (needs ``in_channels == expand1x1 + expand3x3``).
        complex_bypass: the complex bypass, ``shortcut(x) + fire(x)`` with ``shortcut`` a 1x1
            convolution (with bias) from ``in_channels`` to ``expand1x1 + expand3x3``, for modules
            whose channels differ (the paper's Section 6); ``in_channels * (e1 + e3) + e1 + e3``
            more parameters.

    Shapes:
        ``(N, in_channels, H, W) -> (N, expand1x1 + expand3x3, H, W)``.

    Raises:
        ValueError: a simple bypass on different channel counts, or both bypasses at once.
    """

    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int, bypass: bool = False,
                 complex_bypass: bool = False) -> None:
        super().__init__()
        if bypass and complex_bypass:
            raise ValueError("a Fire module has one shortcut: choose bypass (the identity) or complex_bypass "
                             "(a 1x1 convolution), not both")
        if bypass and in_channels != expand1x1 + expand3x3:
            raise ValueError(f"a simple bypass adds the input to the output, so it needs in_channels == "
                             f"expand1x1 + expand3x3, got {in_channels} and {expand1x1} + {expand3x3}")
        self.squeeze = nn.Conv2d(in_channels, squeeze, kernel_size=1)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.bypass = bypass
        self.out_channels = expand1x1 + expand3x3
        # the complex bypass's 1x1 convolution on the shortcut (a Caffe convolution: with bias)
        self.shortcut = nn.Conv2d(in_channels, self.out_channels, kernel_size=1) if complex_bypass else None

    def forward(self, x: Tensor) -> Tensor:
        s = F.relu(self.squeeze(x), inplace=True)  # (N, squeeze, H, W)
        out = torch.cat([F.relu(self.expand1x1(s)), F.relu(self.expand3x3(s))], dim=1)  # (N, e1 + e3, H, W)
        if self.shortcut is not None:
            return self.shortcut(x) + out  # (N, e1 + e3, H, W): the input projected to the output's channels
        return x + out if self.bypass else out

    def extra_repr(self) -> str:
        return "bypass=True" if self.bypass else ""


class SqueezeNet(nn.Module):
    """SqueezeNet from a :class:`SqueezeNetConfig`: stem, Fire modules and max-pools, then a 1x1-conv classifier.

    Args:
        config: :data:`SQUEEZENET1_0` or :data:`SQUEEZENET1_1`.
        num_classes: outputs (the final convolution's channels).
        in_channels: channels of the input images.
        bypass: the paper's simple bypass around every Fire module that keeps the channel count.
        complex_bypass: a 1x1-convolution shortcut around every other Fire module (with ``bypass``,
            the paper's complex bypass).
        small_input: a 3x3/1 stem convolution with padding 1, for 28x28 or 32x32 images.
        dropout: dropout probability before the final convolution.

    ``features(x)``: ``(N, in_channels, H, W) -> (N, 512, h, w)`` (13x13 for 224x224).
    ``head(z)``: dropout, 1x1 conv to ``num_classes``, ReLU, global average pool:
    ``(N, 512, h, w) -> (N, num_classes)``.
    """

    def __init__(self, config: SqueezeNetConfig = SQUEEZENET1_0, num_classes: int = 1000, *, in_channels: int = 3,
                 bypass: bool = False, complex_bypass: bool = False, small_input: bool = False,
                 dropout: float = 0.5) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(in_channels, "in_channels")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        stem = Window(3, 1, 1) if small_input else Window(config.stem_kernel, stride=2)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, config.stem_channels, stem.kernel, stride=stem.stride, padding=stem.padding),
            nn.ReLU(inplace=True),
        ]
        windows = [stem]
        channels = config.stem_channels
        for entry in config.layers:
            if entry == "M":
                layers.append(nn.MaxPool2d(POOL.kernel, stride=POOL.stride, ceil_mode=POOL.ceil_mode))
                windows.append(POOL)
                continue
            squeeze, e1, e3 = entry  # type: ignore[misc]
            same = channels == e1 + e3  # an identity shortcut fits
            fire = Fire(channels, squeeze, e1, e3, bypass=bypass and same, complex_bypass=complex_bypass and not same)
            layers.append(fire)
            channels = fire.out_channels
        self.in_channels, self.out_channels = in_channels, channels
        self.min_size = min_input_size(windows)  # 1.0: 21, 1.1: 17, small_input: 3
        self.features = CheckedSequential(layers, channels=in_channels, min_size=self.min_size, model="SqueezeNet")
        final_conv = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), final_conv, nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d(1))
        self._init_weights(final_conv)

    def _init_weights(self, final_conv: nn.Conv2d) -> None:
        """He (uniform) initialisation, except N(0, 0.01) for the final convolution so the class scores start small."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    # ``features`` is the ``CheckedSequential`` above: ``model.features(x)`` runs (and checks) it.

    def head(self, z: Tensor) -> Tensor:
        """One score map per class, averaged: ``(N, 512, h, w) -> (N, num_classes)``."""
        check_feature_map(z, channels=self.out_channels, model="SqueezeNet")
        return torch.flatten(self.classifier(z), 1)  # (N, num_classes, 1, 1) -> (N, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W) -> (N, num_classes)`` scores (non-negative: a ReLU precedes the pooling)."""
        return self.head(self.features(x))


def squeezenet1_0(num_classes: int = 1000, *, in_channels: int = 3, bypass: bool = False,
                  complex_bypass: bool = False, small_input: bool = False, dropout: float = 0.5) -> SqueezeNet:
    """SqueezeNet 1.0: 1,248,424 parameters for 1000 classes (the paper's 1.25 million); inputs of at least 21x21."""
    return SqueezeNet(SQUEEZENET1_0, num_classes, in_channels=in_channels, bypass=bypass,
                      complex_bypass=complex_bypass, small_input=small_input, dropout=dropout)


def squeezenet1_1(num_classes: int = 1000, *, in_channels: int = 3, bypass: bool = False,
                  complex_bypass: bool = False, small_input: bool = False, dropout: float = 0.5) -> SqueezeNet:
    """SqueezeNet 1.1: 1,235,496 parameters for 1000 classes; inputs of at least 17x17."""
    return SqueezeNet(SQUEEZENET1_1, num_classes, in_channels=in_channels, bypass=bypass,
                      complex_bypass=complex_bypass, small_input=small_input, dropout=dropout)


__all__ = ["SQUEEZENET1_0", "SQUEEZENET1_1", "Fire", "SqueezeNet", "SqueezeNetConfig", "squeezenet1_0",
           "squeezenet1_1"]
