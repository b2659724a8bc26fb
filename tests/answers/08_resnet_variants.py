"""Answers to exercise 08_resnet_variants: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F
from torch import nn

import companion.count
import companion.models.preact
import companion.models.wrn
import torchvision.models.resnet


class _PreActBlock(nn.Module):
    def __init__(self, in_channels, channels, stride=1, mistake=None):
        super().__init__()
        self.mistake = mistake
        s1, s2 = (1, stride) if mistake == "stride second" else (stride, 1)
        first = channels if mistake == "post-activation" else in_channels  # conv first: bn1 sees its output
        self.bn1 = nn.BatchNorm2d(first)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=s1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=s2, padding=1, bias=False)
        reshapes = stride != 1 or in_channels != channels
        self.shortcut = nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False) if reshapes else None

    def forward(self, x):
        pre = torch.relu(self.bn1(x)) if self.mistake != "post-activation" else None
        if self.mistake == "post-activation":
            branch = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        else:
            branch = self.conv2(torch.relu(self.bn2(self.conv1(pre))))
        if self.shortcut is not None:
            from_x = self.mistake in ("projection from x", "post-activation", "colleague")
            shortcut = self.shortcut(x if from_x else pre)
        else:
            shortcut = pre if self.mistake in ("identity preactivated", "colleague") else x
        out = branch + shortcut
        return torch.relu(out) if self.mistake == "relu after" else out


def preact_block(in_channels, channels, stride=1, *, mistake=None):
    return _PreActBlock(in_channels, channels, stride, mistake)


def bottleneck_parameters(in_channels, channels, groups, width_per_group, *, mistake=None):
    width = channels * width_per_group // 64 * groups if mistake != "width" else groups * width_per_group
    out = 4 * channels
    conv_groups = 1 if mistake == "groups" else groups
    convs = in_channels * width + 9 * width * (width // conv_groups) + width * out
    bns = 2 * (width + width + out)
    shortcut = in_channels * out + 2 * out if in_channels != out else 0
    if mistake == "projection":
        shortcut = 0
    if mistake == "bn":
        bns, shortcut = 0, shortcut - 2 * out if shortcut else 0
    biases = width + width + out + (out if in_channels != out else 0) if mistake == "bias" else 0
    return convs + bns + shortcut + biases


def wrn_parameters(depth, widen_factor, num_classes=10, in_channels=3, *, mistake=None):
    n = (depth - 4) // 6
    bn = 0 if mistake == "bn" else 2
    channels = 16 * widen_factor if mistake == "stem" else 16
    total = 9 * in_channels * channels
    for group, width in enumerate([16 * widen_factor, 32 * widen_factor, 64 * widen_factor]):
        for block in range(n):
            total += bn * channels + 9 * channels * width + bn * width + 9 * width * width
            projection = block == 0 and channels != width
            if projection and mistake != "projections" and not (mistake == "first projection" and group == 0):
                total += channels * width
            channels = width
    if mistake != "final bn":
        total += bn * channels
    return total + (channels + 1) * num_classes


def dense_weight(weight, groups, *, mistake=None):
    c_out, c_in_per_group, kh, kw = weight.shape
    if mistake == "unchanged":
        return weight
    dense = weight.new_zeros(c_out, c_in_per_group * groups, kh, kw)
    per_group = c_out // groups
    for j in range(groups):
        rows = weight[j * per_group:(j + 1) * per_group]  # (C_out / g, C_in / g, kh, kw)
        for i in range(groups) if mistake == "tiled" else [j]:
            dense[j * per_group:(j + 1) * per_group, i * c_in_per_group:(i + 1) * c_in_per_group] = rows
    if mistake == "interleaved":
        dense = dense[torch.arange(c_out).view(groups, per_group).T.reshape(-1)]
    return dense


# (question, implementation, its mistake, words of the message it must get)
def predicted_ratio(*, mistake=None):
    return {"linear": 10.0, "cubic": 1000.0, "sum": 20.0, "none": 1.0}.get(mistake, 100.0)


WRONG = [
    ("q1", preact_block, "colleague", "still the colleague's bug: the two shortcuts are swapped"),
    ("q5", predicted_ratio, "linear", "10 would be right if the parameters grew like the width"),
    ("q5", predicted_ratio, "cubic", "1000 counts one factor of k too many"),
    ("q5", predicted_ratio, "sum", "20 adds the widening"),
    ("q5", predicted_ratio, "none", "1 would mean the width does not change the count"),
    ("q1", preact_block, "relu after", "ReLU is applied after the addition"),
    ("q1", preact_block, "post-activation", "the original order, conv-BN-ReLU"),
    ("q1", preact_block, "identity preactivated", "identity shortcut carries relu(bn1(x))"),
    ("q1", preact_block, "projection from x", "projection shortcut reads x"),
    ("q1", preact_block, "stride second", "stride is on the second convolution"),
    ("q2", bottleneck_parameters, "groups", "groups are ignored"),
    ("q2", bottleneck_parameters, "bn", "batch norms are forgotten"),
    ("q2", bottleneck_parameters, "projection", "projection shortcut is forgotten"),
    ("q2", bottleneck_parameters, "bias", "biases are counted"),
    ("q2", bottleneck_parameters, "width", "inner width is not scaled"),
    ("q3", wrn_parameters, "projections", "projection shortcuts are forgotten"),
    ("q3", wrn_parameters, "first projection", "first group's projection is forgotten"),
    ("q3", wrn_parameters, "final bn", "final batch norm is forgotten"),
    ("q3", wrn_parameters, "bn", "the batch norms are forgotten"),
    ("q3", wrn_parameters, "stem", "stem is widened"),
    ("q4", dense_weight, "unchanged", "returned as it is"),
    ("q4", dense_weight, "tiled", "off-diagonal blocks are not zero"),
    ("q4", dense_weight, "interleaved", "groups are interleaved"),
]


def _tv_bottleneck_count(c_in, c, g, wpg):
    down = None
    if c_in != 4 * c:
        down = nn.Sequential(nn.Conv2d(c_in, 4 * c, 1, bias=False), nn.BatchNorm2d(4 * c))
    block = torchvision.models.resnet.Bottleneck(c_in, c, downsample=down, groups=g, base_width=wpg)
    return sum(p.numel() for p in block.parameters())


def _impulse_dense_weight(w, g):
    c_in = w.shape[1] * g
    kh, kw = w.shape[-2:]
    impulses = w.new_zeros(c_in, c_in, 2 * kh - 1, 2 * kw - 1)
    impulses[torch.arange(c_in), torch.arange(c_in), kh - 1, kw - 1] = 1
    return F.conv2d(impulses, w, groups=g).transpose(0, 1).flip(-2, -1)


CHEATS = [
    ("q1", lambda i, c, s=1: companion.models.preact.PreActBlock(i, c, s)),
    ("q1", lambda i, c, s=1: companion.models.wrn.wide_resnet(10, 1).stages[0][0].__class__(i, c, s)),
    ("q2", _tv_bottleneck_count),
    ("q2", lambda c_in, c, g, wpg: companion.count.count_parameters(
        torchvision.models.resnet.Bottleneck(c_in, c, groups=g, base_width=wpg))),
    ("q3", lambda d, k, n=10, c=3: sum(p.numel() for p in companion.models.wrn.wide_resnet(d, k, n, in_channels=c).parameters())),
    ("q4", _impulse_dense_weight),
    ("q4", lambda w, g: torch.stack([torch.stack([torch.block_diag(*w[:, :, a, b].split(w.shape[0] // g))
                                                  for b in range(w.shape[3])], -1) for a in range(w.shape[2])], -2)),
]
