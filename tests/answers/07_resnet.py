"""Answers to exercise 07_resnet: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F
import torchvision.models
from torch import nn

import companion.count
import companion.models.resnet


def basic_block(in_channels, channels, stride=1, *, mistake=None):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            first, second = (1, stride) if mistake == "stride on conv2" else (stride, 1)
            self.conv1 = nn.Conv2d(in_channels, channels, 3, first, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, second, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)
            reshapes = stride != 1 or in_channels != channels
            if mistake == "half rule":  # forgets that a stride alone changes the shape
                reshapes = in_channels != channels
            self.downsample = None
            if (reshapes and mistake not in ("no projection",)) or mistake == "projection everywhere":
                conv = nn.Conv2d(in_channels, channels, 1, stride, bias=False)
                self.downsample = nn.Sequential(conv) if mistake == "no shortcut bn" else nn.Sequential(
                    conv, nn.BatchNorm2d(channels))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if mistake == "relu before add":
                out = F.relu(out)
            out = out + (x if self.downsample is None else self.downsample(x))
            return out if mistake in ("no final relu", "relu before add") else F.relu(out)

    return Block()


def bottleneck_parameters(in_channels, channels, stride=1, *, mistake=None):
    out = channels if mistake == "expansion" else 4 * channels
    convs = [in_channels * channels, 9 * channels * channels, channels * out]
    norms = [channels, channels, out]
    project = stride != 1 or in_channels != out
    project = {"no projection": False, "projection always": True}.get(mistake, project)
    if project:
        convs.append(in_channels * out)
        norms.append(out)
    per_channel = {"no bn": 0, "running stats": 4}.get(mistake, 2)
    bias = sum(norms) if mistake == "conv bias" else 0  # every conv has as many outputs as the norm after it
    return sum(convs) + per_channel * sum(norms) + bias


def stage_shapes(height, width, bottleneck, *, mistake=None):
    def halve(n):
        return n // 2 if mistake == "floor" else (n + 2 * 1 - 3) // 2 + 1

    expansion = 4 if bottleneck else 1
    expansion = {"expansion missing": 1, "expansion everywhere": 4}.get(mistake, expansion)
    h, w = (height - 1) // 2 + 1, (width - 1) // 2 + 1  # 7x7, stride 2, padding 3
    if mistake == "floor":
        h, w = height // 2, width // 2
    shapes = [(64, h, w)]
    if mistake != "no pool":
        h, w = halve(h), halve(w)
    shapes.append((64, h, w))
    for i, channels in enumerate((64, 128, 256, 512)):
        if i > 0 or mistake == "layer1 strided":
            h, w = halve(h), halve(w)
        shapes.append((channels * expansion, h, w))
    return [(c, w, h) for c, h, w in shapes] if mistake == "swapped" else shapes


def option_a_shortcut(x, out_channels, stride, *, mistake=None):
    if mistake == "average":
        sub = F.avg_pool2d(x, stride, ceil_mode=True) if stride > 1 else x
    elif mistake == "no stride":
        sub = x
    elif mistake == "phase":
        sub = x[:, :, 1::stride, 1::stride] if stride > 1 else x
    else:
        sub = x[:, :, ::stride, ::stride]  # (N, C, ceil(H / s), ceil(W / s))
    n, c, h, w = sub.shape
    if mistake == "repeat":
        return sub.repeat(1, -(-out_channels // c), 1, 1)[:, :out_channels]
    zeros = sub.new_zeros(n, out_channels - c, h, w)
    if mistake == "zeros first":
        return torch.cat([zeros, sub], dim=1)
    return torch.cat([sub, zeros], dim=1)


def predicted_nonzero_gradients(*, mistake=None):
    return {"all": 6, "none": 0, "gamma only": 1, "with conv2": 3}.get(mistake, 2)


def zero_last_bn(model, *, mistake=None):
    blocks = (torchvision.models.resnet.BasicBlock, torchvision.models.resnet.Bottleneck)
    for m in model.modules():
        if not isinstance(m, blocks):
            continue
        bottleneck = isinstance(m, torchvision.models.resnet.Bottleneck)
        last = "bn3" if bottleneck else "bn2"
        names = {"colleague": ["bn1"], "bn2": ["bn2"],
                 "all": ["bn1", "bn2", "bn3"] if bottleneck else ["bn1", "bn2"]}.get(mistake, [last])
        if mistake == "conv":
            m.get_submodule("conv3" if bottleneck else "conv2").weight.data.zero_()
        else:
            for layer in names:
                with torch.no_grad():
                    getattr(m, layer).weight.zero_()
        if mistake == "shortcut" and m.downsample is not None:
            with torch.no_grad():
                m.downsample[1].weight.zero_()


WRONG = [
    ("q5", predicted_nonzero_gradients, "all", "6 would mean every tensor learns"),
    ("q5", predicted_nonzero_gradients, "none", "0 would mean the block never starts learning"),
    ("q5", predicted_nonzero_gradients, "gamma only", "forgets one of the last batch norm's two parameters"),
    ("q5", predicted_nonzero_gradients, "with conv2", "conv2's weight does not learn yet"),
    ("q6", zero_last_bn, "colleague", "still the colleague's bug: bn1 is zeroed"),
    ("q6", zero_last_bn, "bn2", "last batch norm is bn3, not bn2"),
    ("q6", zero_last_bn, "all", "every batch norm of the branch is zeroed"),
    ("q6", zero_last_bn, "shortcut", "shortcut's batch norm is zeroed too"),
    ("q6", zero_last_bn, "conv", "last convolution's weight is zeroed instead"),
    ("q1", basic_block, "no projection", "projection shortcut is missing"),
    ("q1", basic_block, "half rule", "projection shortcut is missing"),
    ("q1", basic_block, "projection everywhere", "a projection shortcut is used where the shape does not change"),
    ("q1", basic_block, "no shortcut bn", "the shortcut has no batch norm"),
    ("q1", basic_block, "relu before add", "the ReLU comes before the addition"),
    ("q1", basic_block, "no final relu", "the final ReLU is missing"),
    ("q1", basic_block, "stride on conv2", "the stride is on the wrong convolution"),
    ("q2", bottleneck_parameters, "expansion", "expansion is missing"),
    ("q2", bottleneck_parameters, "no projection", "projection shortcut is missing"),
    ("q2", bottleneck_parameters, "projection always", "a projection is counted where the shortcut is the identity"),
    ("q2", bottleneck_parameters, "no bn", "batch norms are forgotten"),
    ("q2", bottleneck_parameters, "running stats", "running mean and variance are counted"),
    ("q2", bottleneck_parameters, "conv bias", "counted with a bias"),
    ("q3", stage_shapes, "floor", "halved by rounding down"),
    ("q3", stage_shapes, "no pool", "max-pool after conv1 is forgotten"),
    ("q3", stage_shapes, "layer1 strided", "layer1 halves the resolution too"),
    ("q3", stage_shapes, "expansion missing", "the expansion is missing"),
    ("q3", stage_shapes, "expansion everywhere", "basic blocks are given the expansion"),
    ("q3", stage_shapes, "swapped", "height and width are swapped"),
    ("q4", option_a_shortcut, "no stride", "the stride is ignored"),
    ("q4", option_a_shortcut, "phase", "subsampling starts at the wrong pixel"),
    ("q4", option_a_shortcut, "average", "the input is averaged"),
    ("q4", option_a_shortcut, "repeat", "the new channels are not zeros"),
    ("q4", option_a_shortcut, "zeros first", "zero channels are in the wrong place"),
]


def _torchvision_block(in_channels, channels, stride=1):
    downsample = None
    if stride != 1 or in_channels != channels:
        downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels))
    return torchvision.models.resnet.BasicBlock(in_channels, channels, stride, downsample)


def _companion_bottleneck_count(in_channels, channels, stride=1):
    return companion.count.count_parameters(companion.models.resnet.Bottleneck(in_channels, channels, stride))


def _torchvision_shapes(height, width, bottleneck):
    with torch.device("meta"):
        model = torchvision.models.resnet50() if bottleneck else torchvision.models.resnet18()
        x, shapes = torch.empty(1, 3, height, width), []
        for stage in ("conv1", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            x = getattr(model, stage)(x)
            shapes.append(tuple(x.shape[1:]))
    return shapes


CHEATS = [
    ("q1", lambda in_channels, channels, stride=1: companion.models.resnet.BasicBlock(in_channels, channels, stride)),
    ("q1", _torchvision_block),
    ("q2", _companion_bottleneck_count),
    ("q3", _torchvision_shapes),
    ("q4", lambda x, out_channels, stride: F.conv2d(x, torch.eye(out_channels, x.shape[1], dtype=x.dtype)[:, :, None, None],
                                                    stride=stride)),
]
