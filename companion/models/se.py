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

import torch
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


def se_gates(model: nn.Module, x: Tensor, batch_size: int = 500) -> list[Tensor]:
    """The gates of every :class:`SEBlock` of ``model`` on the inputs ``x``, in the order they run.

    The model runs in evaluation mode without gradients (its mode is restored afterwards), on its own
    device; forward hooks on each block's sigmoid record the gates.

    Args:
        model: a network containing SE blocks (e.g. ``ResNet(SEBasicBlock, ...)``).
        x (Tensor[N, ...]): its inputs.
        batch_size: images per forward pass.

    Returns:
        One Tensor[N, C_b] per SE block ``b`` (on the CPU), values in (0, 1).
    """
    blocks = [m for m in model.modules() if isinstance(m, SEBlock)]
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no SEBlock")
    check_tensor(x, "x", floating=True)
    found: list[list[Tensor]] = [[] for _ in blocks]
    hooks = [block.sigmoid.register_forward_hook(
        lambda module, inputs, output, store=store: store.append(output.flatten(1).cpu()))  # (n, C_b)
        for block, store in zip(blocks, found)]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            for start in range(0, len(x), batch_size):
                model(x[start:start + batch_size].to(device))  # gates come back on the CPU
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    return [torch.cat(store) for store in found]


def class_specificity(gates: Tensor, labels: Tensor) -> float:
    """The share of the gates' variance that the class explains (eta squared), pooled over the channels.

    ``sum_c sum_k n_k (m_kc - m_c)^2 / sum_c sum_i (g_ic - m_c)^2`` for class means ``m_kc`` and
    overall means ``m_c``: 0 when every class has the same mean gates, 1 when the gates depend on the class alone. Hu et
    al. find the gates of shallow blocks alike for all classes and those of deep blocks
    class-specific (section 7.2, the role of excitation).

    Args:
        gates (Tensor[N, C]): e.g. one block's entry of :func:`se_gates`.
        labels (Tensor[N]): integer classes.
    """
    check_tensor(gates, "gates", ndim=2, shape_hint="(N, C)", floating=True)
    check_tensor(labels, "labels", ndim=1, shape_hint="(N,)")
    if len(labels) != len(gates):
        raise ValueError(f"gates and labels must hold the same number of images, got {len(gates)} and {len(labels)}")
    gates = gates.double()
    centred = gates - gates.mean(0)                                          # (N, C)
    classes, labels = torch.unique(labels, return_inverse=True)
    sums = torch.zeros(len(classes), gates.shape[1], dtype=gates.dtype).index_add_(0, labels, centred)  # (K, C)
    counts = torch.bincount(labels, minlength=len(classes)).to(gates.dtype)  # (K,)
    between = (sums ** 2 / counts[:, None]).sum()                            # sum_k n_k |m_k - m|^2
    total = (centred ** 2).sum()
    return float(between / total) if total > 0 else 0.0


__all__ = ["SEBasicBlock", "SEBlock", "SEBottleneck", "class_specificity", "se_gates", "se_resnet50"]
