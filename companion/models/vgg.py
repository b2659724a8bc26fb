"""VGG: stacks of 3x3 convolutions, given as a list of widths and max-pools.

Simonyan & Zisserman, *Very Deep Convolutional Networks for Large-Scale Image Recognition*, ICLR
2015 (https://arxiv.org/abs/1409.1556). Every convolution is 3x3 with padding 1 (two of them see a
5x5 window, three a 7x7 one, with fewer parameters and more non-linearities); a 2x2 max-pool
halves the resolution between stages, and the width doubles from 64 to 512. A configuration of
Table 1 is a list, ``[64, "M", 128, "M", ...]`` (a number: a convolution with that many output
channels, ``"M"``: a max-pool), and the network is that list plus three fully connected layers.

:func:`vgg11` and :func:`vgg16` have torchvision's parameter names and shapes, so torchvision's
ImageNet weights load into them; ``batch_norm=True`` matches ``torchvision.models.vgg11_bn`` /
``vgg16_bn``. Deviations from the paper, as in torchvision:

* an adaptive average pool to 7x7 before the classifier, so that any input of at least 32x32
  pixels works (the paper instead turns the classifier into convolutions at test time, its "dense
  evaluation"; at 224x224 the pool does nothing);
* the optional batch norm after each convolution, which came later (Ioffe & Szegedy, 2015).

The paper's dense evaluation is :func:`convolutional_head`: the three linear layers rewritten as a
7x7 convolution and two 1x1 ones, with the same weights, so that a larger image gives a map of
class scores, one per 7x7 window of the feature map (the idea of OverFeat, Sermanet et al., 2014,
https://arxiv.org/abs/1312.6229). :func:`multi_scale_posteriors` is its multi-scale testing: the
posteriors of the whole image at several test scales, averaged (training with scale jittering is
:func:`companion.augment.scale_jitter_crop`).

The course's own option ``kernel_size`` (3 in every VGG) builds the same network with another
square kernel, e.g. one 5x5 convolution per stage, for the chapter's comparison of a stack of
two 3x3 convolutions with one 5x5 convolution that sees the same 5x5 window (the paper's Section
4.1 makes the same comparison on ImageNet).

The course's own option ``small_input=True`` is the usual network for 28x28 and 32x32 images:
the last max-pool is dropped (after four of them, a 28x28 image is already 1x1) and the
7x7x512 -> 4096 -> 4096 classifier, which is most of VGG's parameters, becomes global average
pooling and one linear layer.

Introduced in chapter 5, *AlexNet and VGG*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from companion._checks import check_positive_int
from companion.models._input import CheckedSequential
from companion.models._shapes import Window, check_feature_map, min_input_size

Config = Sequence[int | str]

# The configurations of Table 1: a number is a 3x3 convolution with that many output channels,
# "M" a 2x2 max-pool. The name counts the layers with weights: convolutions + 3 linear layers.
VGG11: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")  # A: 8 + 3
VGG13: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")  # B: 10 + 3
VGG16: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                512, 512, 512, "M", 512, 512, 512, "M")  # D: 13 + 3
VGG19: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                512, 512, 512, 512, "M", 512, 512, 512, 512, "M")  # E: 16 + 3

#: The 2x2, stride-2 max-pool between stages.
POOL = Window(kernel=2, stride=2)


def make_layers(config: Config, in_channels: int = 3, batch_norm: bool = False,
                kernel_size: int = 3) -> list[nn.Module]:
    """The convolutional part of a VGG: ``conv3x3 -> [BN] -> ReLU`` per number, ``MaxPool2d(2)`` per ``"M"``.

    Args:
        config: e.g. :data:`VGG16`.
        in_channels: channels of the input images.
        batch_norm: put a batch norm between each convolution and its ReLU.
        kernel_size: the (odd) side of every convolution's kernel, padded by ``kernel_size // 2`` so
            that the convolutions keep the size; 3 in VGG (and in torchvision's ``make_layers``).

    Returns:
        The layers, in order (their positions are torchvision's: ``features.0`` is the first convolution).

    Raises:
        ValueError: an entry that is neither a positive int nor ``"M"``, or an even or non-positive ``kernel_size``.
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size <= 0 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int (so that padding kernel_size // 2 keeps the size), "
                         f"got {kernel_size!r}")
    layers: list[nn.Module] = []
    channels = in_channels
    for entry in config:
        if entry == "M":
            layers.append(nn.MaxPool2d(POOL.kernel, stride=POOL.stride))
            continue
        if isinstance(entry, bool) or not isinstance(entry, int) or entry <= 0:
            raise ValueError(f"a VGG config holds positive ints (convolution widths) and 'M' (max-pool), "
                             f"got {entry!r} in {list(config)}")
        # The convolution keeps its bias even before a batch norm, as torchvision's does (the norm makes it redundant).
        layers.append(nn.Conv2d(channels, entry, kernel_size=kernel_size, padding=kernel_size // 2))
        if batch_norm:
            layers.append(nn.BatchNorm2d(entry))
        layers.append(nn.ReLU(inplace=True))
        channels = entry
    return layers


class VGG(nn.Module):
    """A VGG network from a configuration list.

    Args:
        config: widths and ``"M"`` for max-pools, e.g. :data:`VGG11` or a smaller list of your own.
        num_classes: outputs of the classifier.
        in_channels: channels of the input images (1 for Fashion-MNIST).
        batch_norm: batch norm after every convolution (torchvision's ``vgg*_bn``).
        small_input: for 28x28 or 32x32 images: drop a final ``"M"`` and classify with global
            average pooling and one linear layer instead of the 7x7 pool and three linear layers.
        dropout: dropout probability in the three-layer classifier.
        kernel_size: the side of every convolution's kernel (3 in VGG; see :func:`make_layers`).

    ``features(x)``: ``(N, in_channels, H, W) -> (N, C, H / 2**p, W / 2**p)``, with ``C`` the last
    width and ``p`` the number of max-pools (rounded down at each pool); ``H, W >= 2**p``.
    ``head(z)``: ``(N, C, h, w) -> (N, num_classes)``.
    """

    def __init__(self, config: Config, num_classes: int = 1000, *, in_channels: int = 3, batch_norm: bool = False,
                 small_input: bool = False, dropout: float = 0.5, kernel_size: int = 3) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(in_channels, "in_channels")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        widths = [entry for entry in config if entry != "M"]
        if not widths:
            raise ValueError(f"a VGG config needs at least one convolution width, got {list(config)}")
        if small_input and config[-1] == "M":
            config = config[:-1]  # small images: no pooling of the last, already tiny, map
        layers = make_layers(config, in_channels, batch_norm, kernel_size)
        self.in_channels, self.out_channels = in_channels, int(widths[-1])
        self.min_size = min_input_size([POOL] * list(config).count("M"))  # 2 ** (number of max-pools)
        self.features = CheckedSequential(layers, channels=in_channels, min_size=self.min_size, model="VGG")
        c = self.out_channels
        if small_input:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier: nn.Module = nn.Linear(c, num_classes)
        else:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(c * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Linear(4096, num_classes),
            )
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation for the convolutions (He et al., 2015), N(0, 0.01) for the linear layers."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    # ``features`` is the ``CheckedSequential`` above: ``model.features(x)`` runs (and checks) it.

    def head(self, z: Tensor) -> Tensor:
        """Pool (to 7x7, or globally with ``small_input``) and classify: ``(N, C, h, w) -> (N, num_classes)``."""
        check_feature_map(z, channels=self.out_channels, model="VGG")
        z = torch.flatten(self.avgpool(z), 1)  # (N, C * 7 * 7), or (N, C) with small_input
        return self.classifier(z)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W) -> (N, num_classes)`` logits."""
        return self.head(self.features(x))


def convolutional_head(model: VGG) -> nn.Sequential:
    """The classifier of ``model`` as convolutions, for the paper's dense evaluation (its Section 3.2).

    The first linear layer reads the flattened ``(C, 7, 7)`` map, so its weight ``(4096, C * 7 * 7)``
    reshaped to ``(4096, C, 7, 7)`` is a 7x7 convolution; the two others become 1x1 convolutions.
    On the 7x7 map of a 224x224 image the result is the classifier's output, as a ``(N, K, 1, 1)``
    map; on the larger map of a larger image, one score vector per 7x7 window (stride 1), which
    the paper averages into one prediction. The weights are copies: the model is not changed.

    Args:
        model: a :class:`VGG` with its three-layer classifier (not built with ``small_input``).

    Returns:
        ``Conv2d(C, 4096, 7) -> ReLU -> Dropout -> Conv2d(4096, 4096, 1) -> ReLU -> Dropout ->
        Conv2d(4096, K, 1)``, taking ``features(x)`` ``(N, C, h, w)`` with ``h, w >= 7`` to
        ``(N, K, h - 6, w - 6)``. It does not apply ``model.avgpool``, which would squeeze the map back to 7x7.

    Raises:
        TypeError: ``model`` is not a :class:`VGG`.
        ValueError: ``model`` has the one-layer classifier of ``small_input=True``.
    """
    if not isinstance(model, VGG):
        raise TypeError(f"model must be a VGG, got {type(model).__name__}")
    linears = [m for m in model.classifier.modules() if isinstance(m, nn.Linear)]
    if len(linears) != 3 or model.avgpool.output_size != (7, 7):
        raise ValueError("convolutional_head needs the 7x7 pool and three linear layers of a VGG built without "
                         "small_input=True; a small_input model already ends with global pooling and one layer")
    dropout = next(m for m in model.classifier.modules() if isinstance(m, nn.Dropout)).p
    (fc1, fc2, fc3), c = linears, model.out_channels
    convs = [nn.Conv2d(c, fc1.out_features, 7), nn.Conv2d(fc2.in_features, fc2.out_features, 1),
             nn.Conv2d(fc3.in_features, fc3.out_features, 1)]
    with torch.no_grad():
        for conv, fc in zip(convs, (fc1, fc2, fc3)):
            # flatten(z, 1) ordered fc1's inputs as (C, 7, 7), so its rows reshape to 7x7 kernels: (out, C, 7, 7).
            conv.weight.copy_(fc.weight.reshape(conv.weight.shape))  # fc2, fc3: (out, in) -> (out, in, 1, 1)
            conv.bias.copy_(fc.bias)
    return nn.Sequential(convs[0], nn.ReLU(inplace=True), nn.Dropout(dropout),
                         convs[1], nn.ReLU(inplace=True), nn.Dropout(dropout), convs[2])


def multi_scale_posteriors(scores: Callable[[Tensor], Tensor], images: Tensor, scales: Sequence[int], *,
                           flip: bool = False, batch_size: int = 500) -> Tensor:
    """VGG's multi-scale testing: class posteriors averaged over several test scales (Section 3.2 and 4.2).

    Each image is rescaled so that its shorter side is ``Q`` (:func:`companion.augment.resize_shorter_side`),
    for every ``Q`` in ``scales``; the network scores the whole rescaled image, fully
    convolutionally (the dense evaluation of :func:`convolutional_head`, whose score map is
    averaged), and the soft-max posteriors of all scales (and, with ``flip``, of the mirrored
    images too) are averaged. For a ``small_input`` VGG, ``scores`` is the model itself: a linear
    layer after global average pooling *is* the average of a map of 1x1-convolution scores, so the
    model is already fully convolutional.

    Args:
        scores: maps images ``(N, C, H, W)`` of any size the network takes to class scores ``(N, K)``.
        images (Tensor[N, C, H, W]): the test images, floating point.
        scales: the test scales ``Q`` (shorter sides), e.g. ``(S_min, (S_min + S_max) // 2, S_max)``.
        flip: also average the posteriors of the horizontally flipped images.
        batch_size: images scored at once.

    Returns:
        Tensor[N, K]: averaged posteriors (each row sums to 1); ``argmax(1)`` is the prediction.
    """
    from companion.augment import resize_shorter_side

    if len(scales) == 0:
        raise ValueError("scales must hold at least one test scale")
    total: Tensor | None = None
    views = 0
    for q in scales:
        resized = resize_shorter_side(images, q)  # (N, C, H_q, W_q)
        for mirrored in (False, True) if flip else (False,):
            x = resized.flip(-1) if mirrored else resized
            posteriors = torch.cat([scores(x[i:i + batch_size]).softmax(dim=1)  # (B, K) per batch
                                    for i in range(0, len(x), batch_size)])
            total = posteriors if total is None else total + posteriors
            views += 1
    assert total is not None
    return total / views


def vgg11(num_classes: int = 1000, *, in_channels: int = 3, batch_norm: bool = False, small_input: bool = False,
          dropout: float = 0.5) -> VGG:
    """VGG-11 (configuration A): 132,863,336 parameters for 1000 classes (the paper's 133 million)."""
    return VGG(VGG11, num_classes, in_channels=in_channels, batch_norm=batch_norm, small_input=small_input,
               dropout=dropout)


def vgg16(num_classes: int = 1000, *, in_channels: int = 3, batch_norm: bool = False, small_input: bool = False,
          dropout: float = 0.5) -> VGG:
    """VGG-16 (configuration D): 138,357,544 parameters for 1000 classes (the paper's 138 million)."""
    return VGG(VGG16, num_classes, in_channels=in_channels, batch_norm=batch_norm, small_input=small_input,
               dropout=dropout)


__all__ = ["VGG", "VGG11", "VGG13", "VGG16", "VGG19", "convolutional_head", "make_layers", "multi_scale_posteriors",
           "vgg11", "vgg16"]
