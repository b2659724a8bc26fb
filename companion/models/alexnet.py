"""AlexNet, built from a table of its five convolutions.

Krizhevsky, Sutskever & Hinton, *ImageNet Classification with Deep Convolutional Neural Networks*,
NeurIPS 2012 (https://papers.nips.cc/paper/4824-imagenet-classification-with-deep-convolutional-neural-networks):
five convolutions (ReLU after each, max-pooling after the first, second and fifth), then three fully
connected layers with dropout, about 60 million parameters.

:func:`alexnet` has torchvision's parameter names and shapes, so torchvision's ImageNet weights
load into it (``model.load_state_dict(torchvision.models.alexnet(weights="DEFAULT").state_dict())``).
torchvision's AlexNet is the one-GPU network of Krizhevsky, *One weird trick for parallelizing
convolutional neural networks*, 2014 (https://arxiv.org/abs/1404.5997). It differs from the 2012
paper in ways that :data:`ALEXNET_2012` undoes where they concern the parameters:

* 64, 192, 384, 256, 256 channels instead of the paper's 96, 256, 384, 384, 256;
* no split over two GPUs: in the paper conv2, conv4 and conv5 only see the half of the previous
  layer's channels that lives on their GPU (``groups=2`` in :data:`ALEXNET_2012`);
* no local response normalisation after conv1 and conv2 (neither table has it: later work, e.g.
  the VGG paper's Section 4.1, found that it does not help);
* 224x224 inputs with 2 pixels of padding in conv1 instead of 227x227 without: both give the
  paper's 55x55 first feature map;
* an adaptive average pool to 6x6 before the classifier, so that any input of at least 63x63
  pixels gives the 6x6x256 map the first linear layer expects (at 224x224 it does nothing).

The course's own option ``small_input=True`` is for 28x28 and 32x32 images: the first
convolution becomes 3x3 with stride 1 and padding 1 (an 11x11/4 one would leave 6x6 pixels of a
28x28 image), and the classifier reads the globally averaged map (256 values instead of 6x6x256).

Introduced in chapter 5, *AlexNet and VGG*.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from companion._checks import check_positive_int
from companion.models._input import CheckedSequential
from companion.models._shapes import Window, check_feature_map, min_input_size

ConvRow = tuple[int, int, int, int, int, bool]

#: torchvision's AlexNet ("One weird trick", 2014), one row per convolution (sizes for a 224x224 input).
ALEXNET: tuple[ConvRow, ...] = (
    # c_out, kernel, stride, padding, groups, then a 3x3/2 max-pool?
    (64, 11, 4, 2, 1, True),    # 224 -> 55 -> pool -> 27
    (192, 5, 1, 2, 1, True),    # 27 -> pool -> 13
    (384, 3, 1, 1, 1, False),   # 13
    (256, 3, 1, 1, 1, False),   # 13
    (256, 3, 1, 1, 1, True),    # 13 -> pool -> 6
)

#: The 2012 paper's AlexNet (Figure 2): wider, and conv2, conv4, conv5 split into two GPU halves.
ALEXNET_2012: tuple[ConvRow, ...] = (
    # c_out, kernel, stride, padding, groups, then a 3x3/2 max-pool?
    (96, 11, 4, 2, 1, True),
    (256, 5, 1, 2, 2, True),
    (384, 3, 1, 1, 1, False),   # conv3 sees both GPUs' channels
    (384, 3, 1, 1, 2, False),
    (256, 3, 1, 1, 2, True),
)

#: The max-pool after conv1, conv2 and conv5 (the paper's "overlapping pooling": 3x3 windows, stride 2).
POOL = Window(kernel=3, stride=2)


class AlexNet(nn.Module):
    """AlexNet from a table of convolutions: ``features`` (convolutions) and ``head`` (6x6 pool + 3 linear layers).

    Args:
        config: one row ``(c_out, kernel, stride, padding, groups, pool)`` per convolution, e.g.
            :data:`ALEXNET` (torchvision's) or :data:`ALEXNET_2012` (the paper's).
        num_classes: outputs of the last linear layer.
        in_channels: channels of the input images.
        small_input: for 28x28 and 32x32 images, a 3x3/1 first convolution and global average
            pooling before the classifier (the 3 linear layers are kept).
        dropout: dropout probability before the first two linear layers.

    ``features(x)``: ``(N, in_channels, H, W) -> (N, C, h, w)`` with ``C`` the last row's channels
    (``h = 6`` for ``H = 224``; 2 for 28 with ``small_input``). ``head(z)``: ``(N, C, h, w) -> (N, num_classes)``.
    """

    def __init__(self, config: Sequence[ConvRow] = ALEXNET, num_classes: int = 1000, *, in_channels: int = 3,
                 small_input: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(in_channels, "in_channels")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        if len(config) == 0 or any(len(row) != 6 for row in config):
            raise ValueError(f"config must be rows (c_out, kernel, stride, padding, groups, pool), got {config!r}")

        if small_input:
            c_out, _, _, _, groups, pool = config[0]
            config = [(c_out, 3, 1, 1, groups, pool), *config[1:]]  # a 3x3/1 first convolution
        layers: list[nn.Module] = []
        windows: list[Window] = []
        channels = in_channels
        for c_out, kernel, stride, padding, groups, pool in config:
            layers += [nn.Conv2d(channels, c_out, kernel, stride=stride, padding=padding, groups=groups),
                       nn.ReLU(inplace=True)]
            windows.append(Window(kernel, stride, padding))
            if pool:
                layers.append(nn.MaxPool2d(POOL.kernel, stride=POOL.stride))
                windows.append(POOL)
            channels = c_out
        self.in_channels, self.out_channels = in_channels, channels
        self.min_size = min_input_size(windows)  # 63 for both tables (15 with small_input)
        self.features = CheckedSequential(layers, channels=in_channels, min_size=self.min_size, model="AlexNet")
        pooled = 1 if small_input else 6
        self.avgpool = nn.AdaptiveAvgPool2d((pooled, pooled))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(channels * pooled * pooled, 4096), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation for the convolutions; small Gaussian weights for the linear layers."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    # ``features`` is the ``CheckedSequential`` above: ``model.features(x)`` runs (and checks) it.

    def head(self, z: Tensor) -> Tensor:
        """Average-pool to 6x6 (1x1 with ``small_input``) and classify: ``(N, C, h, w) -> (N, num_classes)``."""
        check_feature_map(z, channels=self.out_channels, model="AlexNet")
        z = torch.flatten(self.avgpool(z), 1)  # (N, C * 6 * 6), or (N, C) with small_input
        return self.classifier(z)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W) -> (N, num_classes)`` logits; ``H, W >= 63`` (15 with ``small_input``)."""
        return self.head(self.features(x))


def alexnet(num_classes: int = 1000, *, in_channels: int = 3, small_input: bool = False,
            dropout: float = 0.5) -> AlexNet:
    """torchvision's AlexNet (:data:`ALEXNET`): 61,100,840 parameters for 1000 classes, inputs of at least 63x63."""
    return AlexNet(ALEXNET, num_classes, in_channels=in_channels, small_input=small_input, dropout=dropout)


__all__ = ["ALEXNET", "ALEXNET_2012", "AlexNet", "alexnet"]
