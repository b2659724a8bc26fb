"""Answers to exercise 02_pooling: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F
from torch import nn

import companion.pool


def receptive_field(layers, *, mistake=None):
    field, jump = 1, 1
    for kernel_size, stride in layers:
        if mistake == "own stride":
            jump *= stride
        field += (kernel_size - 1) * (1 if mistake == "jump" else jump)
        if mistake != "own stride":
            jump *= stride
    return field + (1 if mistake == "off by one" else 0)


def conv2d_parameters(in_channels, out_channels, kernel_size, bias=True, groups=1, *, mistake=None):
    kh, kw = (kernel_size, 1 if mistake == "not squared" else kernel_size) if isinstance(kernel_size, int) else kernel_size
    seen = {"in_channels": 1, "groups": in_channels}.get(mistake, in_channels // groups)
    biases = {"biases": 0, "always": out_channels, "per input": in_channels if bias else 0}.get(
        mistake, out_channels if bias else 0)
    return out_channels * seen * kh * kw + biases


def max_pool2d(x, kernel_size, stride=None, *, mistake=None):
    stride = {"default 1": stride or 1, "stride": 1}.get(mistake, stride or kernel_size)
    size = (lambda n: -(-(n - kernel_size) // stride) + 1) if mistake == "ceil" else (lambda n: (n - kernel_size) // stride + 1)
    out = x.new_zeros(x.shape[0], x.shape[1], size(x.shape[2]) + (mistake == "off by one"), size(x.shape[3]))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            window = x[:, :, i * stride:i * stride + kernel_size, j * stride:j * stride + kernel_size]
            if mistake == "average":
                out[:, :, i, j] = window.mean(dim=(-2, -1))
            elif mistake == "zero start":
                out[:, :, i, j] = window.amax(dim=(-2, -1)).clamp(min=0)
            elif mistake == "absolute":
                out[:, :, i, j] = window.abs().amax(dim=(-2, -1))
            elif mistake == "channels":
                out[:, :, i, j] = window.amax(dim=(1, -2, -1))[:, None]  # (N,) -> (N, 1), broadcast over C
            else:
                out[:, :, i, j] = window.amax(dim=(-2, -1))
    return out


WRONG = [
    ("q1", receptive_field, "jump", "jump is forgotten"),
    ("q1", receptive_field, "own stride", "its own stride"),
    ("q1", receptive_field, "off by one", "off by one"),
    ("q2", conv2d_parameters, "biases", "biases are forgotten"),
    ("q2", conv2d_parameters, "always", "although bias=False"),
    ("q2", conv2d_parameters, "per input", "one bias per *input* channel"),
    ("q2", conv2d_parameters, "in_channels", "input channels are forgotten"),
    ("q2", conv2d_parameters, "groups", "groups are ignored"),
    ("q2", conv2d_parameters, "not squared", "k * k weights"),
    ("q3", max_pool2d, "default 1", "stride=None is taken as 1"),
    ("q3", max_pool2d, "stride", "stride is ignored"),
    ("q3", max_pool2d, "average", "average pooling"),
    ("q3", max_pool2d, "zero start", "starts at 0"),
    ("q3", max_pool2d, "absolute", "largest absolute value"),
    ("q3", max_pool2d, "channels", "channels are mixed"),
    ("q3", max_pool2d, "ceil", "stick out of the input"),
    ("q3", max_pool2d, "off by one", "off by one"),
]

CHEATS = [
    ("q1", lambda layers: companion.pool.receptive_field(layers).size),
    ("q2", lambda i, o, k, bias=True, g=1: sum(p.numel() for p in nn.Conv2d(i, o, k, bias=bias, groups=g).parameters())),
    ("q3", lambda x, k, s=None: F.max_pool2d(x, k, s)),
    ("q3", lambda x, k, s=None: nn.MaxPool2d(k, s)(x)),
]
