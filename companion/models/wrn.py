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
:class:`~companion.models.preact.PreActResNet`; this module turns ``(d, k)`` into their tables.

Two studies of the paper are options here. **Block types** (its section 2.1 and Table 2):
``B(3,3)`` is the block above; ``B(3,1,3)``, ``B(1,3,1)``, ``B(1,3)``, ``B(3,1)`` and
``B(3,1,1)`` list the kernel sizes of the block's convolutions, all at the same width (no
bottleneck); :class:`WideBlock` builds any of them. The paper keeps ``n = (d - 4) / 6`` blocks per
group whatever the block type (the parameter counts of its Table 2, e.g. 1.1M for WRN-22-2 with
``B(3,1,3)``, come out only that way), so ``d`` counts two convolutions per block; so do we.
**Dropout placement**: the paper puts dropout between the convolutions, inside
the residual branch; :class:`WideBlock` can also put it on the block's output, after the
addition, where it drops the shortcut's signal as well.

Introduced in chapter 8, *ResNet variants*.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn

from companion._checks import check_positive_int
from companion.models.preact import PreActResNet

#: Where :class:`WideBlock` drops activations.
DropoutAt = Literal["between", "output"]

#: Base channels of the three groups; the group widths are these times ``widen_factor``.
WRN_WIDTHS = (16, 32, 64)
#: Channels of the stem convolution (not widened).
WRN_STEM = 16


class WideBlock(nn.Module):
    """A pre-activation block ``B(k_1, ..., k_m)``: BN-ReLU-conv(k_i) m times at one width, plus the shortcut.

    ``WideBlock(c_in, c, kernels=(3, 3))`` computes what
    :class:`~companion.models.preact.PreActBlock` computes. The projection shortcut (where the
    shape changes) is a 1x1 convolution of the pre-activated input, as in the pre-activation
    paper. Deviation: the paper does not say which convolution of a block with 1x1 kernels
    carries the stride; here the first one with a kernel larger than 1 does (a strided 1x1
    convolution would skip three pixels in four that nothing else in the block sees), or the
    first one if all are 1x1.

    Args:
        in_channels: channels of the input.
        channels: channels of every convolution and of the output.
        stride: stride of the block (of one convolution and of the projection shortcut).
        kernels: kernel sizes of the convolutions, in order; odd, each padded to keep the size.
        dropout: dropout probability (0 for none).
        dropout_at: ``"between"``: before every convolution but the first, after its BN-ReLU
            (for ``B(3,3)`` the paper's BN-ReLU-conv-BN-ReLU-dropout-conv); ``"output"``: on the
            block's output, after the addition, so that the shortcut's signal is dropped too.

    Shapes:
        ``(N, in_channels, H, W) -> (N, channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1, kernels: Sequence[int] = (3, 3),
                 dropout: float = 0.0, dropout_at: DropoutAt = "between") -> None:
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(channels, "channels")
        check_positive_int(stride, "stride")
        kernels = tuple(kernels)
        if not kernels or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0
                              for k in kernels):
            raise ValueError(f"kernels must be a non-empty list of odd kernel sizes, e.g. (3, 1, 3), got {kernels!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        if dropout_at not in ("between", "output"):
            raise ValueError(f"dropout_at must be 'between' or 'output', got {dropout_at!r}")
        self.kernels, self.dropout_at = kernels, dropout_at
        strided = next((i for i, k in enumerate(kernels) if k > 1), 0)
        widths = [in_channels] + [channels] * len(kernels)  # input channels of each convolution, then the output
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in widths[:-1])
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, channels, k, stride=stride if i == strided else 1, padding=k // 2, bias=False)
            for i, (c_in, k) in enumerate(zip(widths, kernels)))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        reshapes = stride != 1 or in_channels != channels
        self.shortcut = nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False) if reshapes else None

    def forward(self, x: Tensor) -> Tensor:
        pre = torch.relu(self.norms[0](x))
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        out = self.convs[0](pre)
        for norm, conv in zip(self.norms[1:], self.convs[1:]):
            out = torch.relu(norm(out))
            if self.dropout_at == "between":
                out = self.dropout(out)
            out = conv(out)  # (N, channels, h, w)
        out = out + shortcut
        return self.dropout(out) if self.dropout_at == "output" else out


def blocks_per_group(depth: int) -> int:
    """``n`` of WRN-``d``-``k``: ``d = 6n + 4``, for every block type (as in the paper)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6 != 0:
        raise ValueError(f"depth must be 6n + 4 for a whole number n >= 1 of blocks per group "
                         f"(10, 16, 22, 28, 40, ...), got {depth!r}")
    return (depth - 4) // 6


def wide_resnet(depth: int, widen_factor: int, num_classes: int = 10, dropout: float = 0.0, *,
                in_channels: int = 3, block: Sequence[int] = (3, 3),
                dropout_at: DropoutAt = "between") -> PreActResNet:
    """WRN-``depth``-``widen_factor`` for 32x32 (or 28x28) images.

    Args:
        depth: ``6n + 4`` (10, 16, 22, 28, 40, ...), with ``n`` blocks per group, whatever the block
            type (the paper's convention).
        widen_factor: ``k``, the width multiplier of the blocks (1 gives a thin pre-activation ResNet).
        num_classes: outputs of the classifier.
        dropout: dropout probability (the paper uses 0.3 when it does).
        in_channels: channels of the input images (1 for Fashion-MNIST).
        block: kernel sizes of the block's convolutions, the paper's ``B(3,3)`` by default.
        dropout_at: ``"between"`` the convolutions (the paper's choice) or on the block's ``"output"``.

    Returns:
        A :class:`~companion.models.preact.PreActResNet`; ``features(x)`` maps
        ``(N, in_channels, H, W)`` to ``(N, 64 * widen_factor, ceil(H / 4), ceil(W / 4))``. Its
        blocks are :class:`~companion.models.preact.PreActBlock` for ``B(3,3)`` with dropout
        between the convolutions, :class:`WideBlock` otherwise.
    """
    block = tuple(block)
    if not block:
        raise ValueError("block must list the kernel sizes of the block's convolutions, e.g. (3, 3), got ()")
    n = blocks_per_group(depth)
    check_positive_int(widen_factor, "widen_factor")
    make_block = None
    if block != (3, 3) or dropout_at != "between":
        make_block = partial(WideBlock, kernels=block, dropout=dropout, dropout_at=dropout_at)
    return PreActResNet((n, n, n), [w * widen_factor for w in WRN_WIDTHS], num_classes, stem_channels=WRN_STEM,
                        in_channels=in_channels, small_input=True, dropout=dropout, block=make_block)


__all__ = ["WRN_STEM", "WRN_WIDTHS", "DropoutAt", "WideBlock", "blocks_per_group", "wide_resnet"]
