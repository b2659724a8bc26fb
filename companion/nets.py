"""Small networks for 28x28 greyscale images (Fashion-MNIST): LeNet-5 and the speed-run CNN.

* LeNet-5: LeCun et al., *Gradient-based learning applied to document recognition*, 1998
  (http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf). Deviations from the paper, as in most
  modern re-implementations: ReLU instead of scaled tanh, max pooling instead of trainable
  sub-sampling, a plain fully connected C3 (the paper connects C3 to subsets of S2's maps), and
  padding 2 on the first convolution so that 28x28 inputs give the paper's 32x32 geometry.
* ``fashion_cnn``: the recipe chapter 3 recommends for a fast, strong Fashion-MNIST classifier:
  conv-norm-ReLU stages given as a table, then a small two-layer head.

Both have the two halves every classifier of the course has, ``features(x)`` and ``head(x)``.
Introduced in chapter 3, *Training a CNN*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

Norm = Callable[[int], nn.Module]
Conv = Callable[..., nn.Conv2d]


class Classifier(nn.Module):
    """A ``backbone`` and a ``classifier``: ``features(x) = backbone(x)``, ``head(z) = classifier(z)``, ``forward(x) = head(features(x))``."""

    def __init__(self, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = features
        self.classifier = head

    def features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def head(self, x: Tensor) -> Tensor:
        return self.classifier(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _conv_block(conv: Conv, norm: Norm | None, c_in: int, c_out: int, kernel: int, padding: int) -> list[nn.Module]:
    """conv -> [norm] -> ReLU; the conv has no bias when a norm follows (the norm's shift replaces it)."""
    layers: list[nn.Module] = [conv(c_in, c_out, kernel, padding=padding, bias=norm is None)]
    if norm is not None:
        layers.append(norm(c_out))
    layers.append(nn.ReLU(inplace=True))
    return layers


def lenet5(num_classes: int = 10, norm: Norm | None = None, conv: Conv = nn.Conv2d) -> Classifier:
    """LeNet-5 for ``(N, 1, 28, 28)`` inputs.

    Args:
        num_classes: outputs of the last layer.
        norm: called with a channel count, inserted after each convolution (``nn.BatchNorm2d``,
            ``lambda c: companion.norm.GroupNorm(2, c)``, ...); ``None`` for the original network.
        conv: the convolution class (``nn.Conv2d`` or ``companion.norm.WSConv2d``).

    Returns:
        A :class:`Classifier`; 61,706 parameters with the defaults.
    """
    features = nn.Sequential(
        *_conv_block(conv, norm, 1, 6, 5, padding=2), nn.MaxPool2d(2),   # (N, 6, 14, 14)
        *_conv_block(conv, norm, 6, 16, 5, padding=0), nn.MaxPool2d(2),  # (N, 16, 5, 5)
        nn.Flatten(),                                                     # (N, 400)
    )
    head = nn.Sequential(nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True),
                         nn.Linear(120, 84), nn.ReLU(inplace=True), nn.Linear(84, num_classes))
    return Classifier(features, head)


#: The speed-run CNN as data: one row per stage, (output channels, then a 2x2 max-pool?).
FASHION_CNN_STAGES: tuple[tuple[int, bool], ...] = (
    # c, pool
    (16, True),    # 28x28 -> 14x14
    (32, True),    # 14x14 -> 7x7
)


def fashion_cnn(num_classes: int = 10, norm: Norm | None = nn.BatchNorm2d, conv: Conv = nn.Conv2d,
                stages: Sequence[tuple[int, bool]] = FASHION_CNN_STAGES, hidden: int = 40,
                image_size: int = 28) -> Classifier:
    """The chapter 3 recipe network: 3x3 conv-norm-ReLU stages with pooling, then a small MLP head.

    On a 2-core CPU, most of a step's time goes to the full-resolution layers (convolution, norm,
    pooling at 28x28), so the network is narrow there and spends its ~68k parameters in the
    hidden layer of the head, which costs little time.

    Args:
        num_classes: outputs of the last layer.
        norm: normalisation after every convolution (``None``: plain conv + bias).
        conv: the convolution class.
        stages: rows ``(channels, pool)``; see :data:`FASHION_CNN_STAGES`.
        hidden: width of the hidden layer of the head.
        image_size: side of the square input images.
    """
    layers: list[nn.Module] = []
    c_in, size = 1, image_size
    for c_out, pool in stages:
        layers += _conv_block(conv, norm, c_in, c_out, 3, padding=1)
        c_in = c_out
        if pool:
            layers.append(nn.MaxPool2d(2))
            size //= 2
    features = nn.Sequential(*layers)  # (N, C, size, size)
    head = nn.Sequential(nn.Flatten(),  # (N, C * size * size)
                         nn.Linear(c_in * size * size, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))
    return Classifier(features, head)
