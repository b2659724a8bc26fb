"""Answers to exercise 10_lightweight: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import math

import torch
import torch.nn.functional as F
import torchvision.models.squeezenet
from torch import nn
from torchvision.models._utils import _make_divisible

import companion.count
import companion.models.mobilenet
import companion.models.squeezenet


def predicted_costs(*, mistake=None):
    s, e1, e3 = 32, 128, 128
    c_in = 128
    bias = 0 if mistake == "no bias" else 1
    expand3 = 1 if mistake == "3x3 as 1x1" else 9
    reads = c_in if mistake == "no squeeze" else s
    fire = (c_in + bias) * s + (reads + bias) * e1 + (expand3 * reads + bias) * e3
    depthwise = 9 * 128 * (128 if mistake in ("full depthwise", "standard") else 1)
    pointwise = 0 if mistake in ("no pointwise", "standard") else 128 * 128
    pixels = 1 if mistake == "one pixel" else 14 * 14
    return fire, (depthwise + pointwise) * pixels


def make_divisible(value, divisor=8, *, mistake=None):
    if mistake == "up":
        return max(divisor, math.ceil(value / divisor) * divisor)
    shifted = value if mistake == "down" else value + divisor / 2
    rounded = max(divisor, int(shifted) // divisor * divisor)
    if mistake != "no 10%" and rounded < 0.9 * value:
        rounded += divisor
    return rounded


def fire_class(mistake=None):
    """A Fire module class, right, or with one mistake."""

    class Fire(nn.Module):
        def __init__(self, in_channels, squeeze, expand1x1, expand3x3):
            super().__init__()
            self.squeeze = nn.Conv2d(in_channels, squeeze, 1)
            self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
            self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=0 if mistake == "no padding" else 1)

        def forward(self, x):
            s = self.squeeze(x)
            if mistake not in ("no squeeze relu", "no relu"):
                s = F.relu(s)
            e1, e3 = self.expand1x1(s), self.expand3x3(s)
            if mistake not in ("no expand relu", "no relu"):
                e1, e3 = F.relu(e1), F.relu(e3)
            return torch.cat([e3, e1] if mistake == "swapped" else [e1, e3], dim=1)  # (N, e1 + e3, H, W)

    return Fire


def fire(in_channels, squeeze, expand1x1, expand3x3, *, mistake=None):
    return fire_class(mistake)(in_channels, squeeze, expand1x1, expand3x3)


def depthwise_conv2d(x, weight, stride=1, padding=0, *, mistake=None):
    c, k = x.shape[0], weight.shape[-1]
    if mistake == "flipped":
        weight = weight.flip(-2, -1)
    if mistake != "padding":
        x = F.pad(x, (padding,) * 4)
    step = 1 if mistake == "stride" else stride
    windows = x.unfold(1, k, step).unfold(2, k, step)  # (C, H', W', k, k)
    if mistake == "summed":
        return torch.einsum("dhwab,cab->chw", windows, weight[:, 0])  # every channel through every filter
    return torch.einsum("chwab,cab->chw", windows, weight[:, 0])  # (C, H', W')


class Wrapped(nn.Module):
    """A cheat: the companion's Fire inside a class of the right name."""

    def __init__(self, in_channels, squeeze, expand1x1, expand3x3):
        super().__init__()
        fire = companion.models.squeezenet.Fire(in_channels, squeeze, expand1x1, expand3x3)
        self.squeeze, self.expand1x1, self.expand3x3 = fire.squeeze, fire.expand1x1, fire.expand3x3
        self.fire = [fire]  # a list: not a submodule, so the state dict keeps torchvision's names

    def forward(self, x):
        return self.fire[0](x)


WRONG = [
    ("q1", predicted_costs, "no bias", "biases are forgotten"),
    ("q1", predicted_costs, "3x3 as 1x1", "counted as 1x1"),
    ("q1", predicted_costs, "no squeeze", "squeeze is skipped"),
    ("q1", predicted_costs, "standard", "standard 3x3 convolution's cost"),
    ("q1", predicted_costs, "no pointwise", "pointwise 1x1 convolution is forgotten"),
    ("q1", predicted_costs, "full depthwise", "counted as a full convolution"),
    ("q1", predicted_costs, "one pixel", "one pixel only"),
    ("q2", make_divisible, "no 10%", "10% correction is still missing, the colleague's bug"),
    ("q2", make_divisible, "down", "rounded down"),
    ("q2", make_divisible, "up", "rounded up"),
    ("q3", fire, "no padding", "has no padding"),
    ("q3", fire, "swapped", "wrong order"),
    ("q3", fire, "no squeeze relu", "after the squeeze convolution"),
    ("q3", fire, "no expand relu", "after the expand convolutions"),
    ("q3", fire, "no relu", "no ReLU at all"),
    ("q4", depthwise_conv2d, "summed", "channels are mixed"),
    ("q4", depthwise_conv2d, "flipped", "kernel is flipped"),
    ("q4", depthwise_conv2d, "padding", "padding is ignored"),
    ("q4", depthwise_conv2d, "stride", "stride is ignored"),
]


def _counted():
    separable = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1, groups=128, bias=False), nn.Conv2d(128, 128, 1, bias=False))
    return (companion.count.count_parameters(companion.models.squeezenet.Fire(128, 32, 128, 128)),
            companion.count.count_flops(separable, (128, 14, 14)))


def _built():
    fire = torchvision.models.squeezenet.Fire(128, 32, 128, 128)
    return sum(p.numel() for p in fire.parameters()), (9 * 128 + 128 * 128) * 14 * 14


CHEATS = [
    ("q1", _counted),
    ("q1", _built),
    ("q2", lambda v, d=8: _make_divisible(v, d)),
    ("q2", lambda v, d=8: companion.models.mobilenet.make_divisible(v, d)),
    ("q3", lambda *a: companion.models.squeezenet.Fire(*a)),
    ("q3", lambda *a: torchvision.models.squeezenet.Fire(*a)),
    ("q3", Wrapped),
    ("q4", lambda x, w, s=1, p=0: F.conv2d(x[None], w, stride=s, padding=p, groups=x.shape[0])[0]),
    ("q4", lambda x, w, s=1, p=0: nn.functional.conv2d(x[None], w, None, s, p, 1, x.shape[0])[0]),
]
