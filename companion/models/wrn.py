"""Wide residual networks for small images: WRN-d-k.

Zagoruyko & Komodakis, *Wide Residual Networks*, BMVC 2016 (https://arxiv.org/abs/1605.07146).
Instead of going deeper, make each residual block ``k`` times wider: WRN-28-10 (28 layers, 10x
wide) beats a 1001-layer pre-activation ResNet on CIFAR and trains several times faster, because
wide convolutions use a GPU better than long chains of thin ones.

The network (the paper's Table 1) is a 3x3 stem with 16 channels, then three groups of ``n``
pre-activation blocks with ``16k``, ``32k`` and ``64k`` channels (the second and third group
halve the resolution), then BN-ReLU, global average pooling and a linear classifier. Each block
holds two 3x3 convolutions and, with dropout, drops activations between them
(BN-ReLU-conv-BN-ReLU-dropout-conv). The paper writes the depth as ``d = 6n + 4``: WRN-28-10 has
``n = 4`` blocks per group and 36.5M parameters, WRN-16-8 11.0M and WRN-40-4 8.9M (the paper's
Table 4, for CIFAR-10).

The block is :class:`~companion.models.preact.PreActBlock` and the trunk
:class:`~companion.models.preact.PreActResNet`; this module only turns ``(d, k)`` into their tables.

Introduced in chapter 8, *ResNet variants*.
"""

from __future__ import annotations

from companion._checks import check_positive_int
from companion.models.preact import PreActResNet

#: Base channels of the three groups; the group widths are these times ``widen_factor``.
WRN_WIDTHS = (16, 32, 64)
#: Channels of the stem convolution (not widened).
WRN_STEM = 16


def wide_resnet(depth: int, widen_factor: int, num_classes: int = 10, dropout: float = 0.0, *,
                in_channels: int = 3) -> PreActResNet:
    """WRN-``depth``-``widen_factor`` for 32x32 (or 28x28) images.

    Args:
        depth: ``6n + 4`` (10, 16, 22, 28, 40, ...), with ``n`` blocks per group.
        widen_factor: ``k``, the width multiplier of the blocks (1 gives a thin pre-activation ResNet).
        num_classes: outputs of the classifier.
        dropout: dropout between the two convolutions of each block (the paper uses 0.3 when it does).
        in_channels: channels of the input images (1 for Fashion-MNIST).

    Returns:
        A :class:`~companion.models.preact.PreActResNet`; ``features(x)`` maps
        ``(N, in_channels, H, W)`` to ``(N, 64 * widen_factor, ceil(H / 4), ceil(W / 4))``.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6 != 0:
        raise ValueError(f"depth must be 6n + 4 for a whole number n >= 1 of blocks per group "
                         f"(10, 16, 22, 28, 40, ...), got {depth!r}")
    check_positive_int(widen_factor, "widen_factor")
    n = (depth - 4) // 6
    return PreActResNet((n, n, n), [w * widen_factor for w in WRN_WIDTHS], num_classes, stem_channels=WRN_STEM,
                        in_channels=in_channels, small_input=True, dropout=dropout)


__all__ = ["WRN_STEM", "WRN_WIDTHS", "wide_resnet"]
