"""Answers to exercise 01_convolution: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F
from torch import nn

import companion.backward
import companion.conv


def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1, *, mistake=None):
    span = (kernel_size if mistake == "dilation" else dilation * (kernel_size - 1) + 1)
    padded = n + {"padding": 0, "one side": padding}.get(mistake, 2 * padding)
    if mistake == "float":
        return (padded - span) / stride + 1
    steps = (padded - span) // (1 if mistake == "stride" else stride)
    return steps + (0 if mistake == "off by one" else 1)


def predicted_layer(*, mistake=None):
    height = {"stride": 32, "ceil": 17}.get(mistake, 16)
    parameters = {"groups": 72 * 24 * 25 + 72, "bias": 72 * 25, "multiplier": 24 * 25 + 24}.get(mistake, 72 * 25 + 72)
    return height, parameters


def im2col(x, kernel_size, stride=1, *, mistake=None):
    k, s = kernel_size, 1 if mistake == "stride" else stride
    c, h, w = x.shape
    out_h, out_w = (h - k) // s + 1, (w - k) // s + 1
    positions = [(i, j) for i in range(out_h) for j in range(out_w)]
    if mistake == "columns transposed":
        positions = [(i, j) for j in range(out_w) for i in range(out_h)]
    columns = []
    for i, j in positions:
        window = x[:, i * s:i * s + k, j * s:j * s + k]  # (C, k, k)
        if mistake == "kernel first":
            window = window.permute(1, 2, 0)  # (k, k, C)
        elif mistake == "window transposed":
            window = window.transpose(1, 2)
        columns.append(window.reshape(-1))
    return torch.stack(columns, dim=1)


def corr2d(x, kernel, *, mistake=None):
    kernel = {"flipped": kernel.flip(0, 1), "transposed": kernel.T}.get(mistake, kernel)
    kh, kw = kernel.shape
    out = x.new_zeros(x.shape[0] - kh + 1 + (mistake == "off by one"), x.shape[1] - kw + 1)
    for i in range(x.shape[0] - kh + 1):
        for j in range(out.shape[1]):
            out[i, j] = (x[i:i + kh, j:j + kw] * kernel).sum()
    return out.T if mistake == "output transposed" else out


def conv2d(x, weight, bias=None, stride=1, padding=0, *, mistake=None):
    if mistake == "flipped":
        weight = weight.flip(-2, -1)
    if mistake in ("no bias", "output channels"):
        bias = None
    step = 1 if mistake in ("stride", "unstrided") else stride
    pad = (padding, 0, padding, 0) if mistake == "top left" else (0,) * 4 if mistake == "padding" else (padding,) * 4
    x = F.pad(x, pad)
    kh, kw = weight.shape[2:]
    out_h = (x.shape[1] - kh) // (stride if mistake == "unstrided" else step) + 1 + (mistake == "off by one")
    out_w = (x.shape[2] - kw) // (stride if mistake == "unstrided" else step) + 1
    maps = []
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, i * step:i * step + kh, j * step:j * step + kw]
            if window.shape[1:] != (kh, kw):
                window = F.pad(window, (0, kw - window.shape[2], 0, kh - window.shape[1]))  # the extra row: zeros
            if mistake == "swapped axes":
                products = window * weight.transpose(0, 1)  # (C_in, C_out, ...) read as (C_out, C_in, ...)
            elif mistake == "first channel":
                products = window[:1] * weight[:, :1]
            else:
                products = window * weight  # (C_out, C_in, kh, kw)
            per_channel = products.sum(dim=(2, 3))  # (C_out, C_in)
            maps.append({"unsummed": per_channel, "mean": per_channel.mean(1),
                         "output channels": per_channel.sum(0)}.get(mistake, per_channel.sum(1)))
    out = torch.stack(maps, -1).reshape(*maps[0].shape, out_h, out_w)  # (..., H'*W') -> (..., H', W')
    if bias is not None:
        extra = (None,) * (out.dim() - 1)
        out = out + (x.shape[0] if mistake == "bias per channel" else 1) * bias[(slice(None),) + extra]
    return out


def conv2d_weight_grad(x, grad_output, kernel_size, *, mistake=None):
    k = kernel_size
    if mistake == "first image":
        x, grad_output = x[:1], grad_output[:1]
    out_h, out_w = grad_output.shape[2:]
    grad = x.new_zeros(grad_output.shape[1], x.shape[1], k, k)
    for u in range(k):
        for v in range(k):
            shifted = x[:, :, u:u + out_h, v:v + out_w]  # (N, C_in, H', W')
            grad[:, :, u, v] = torch.einsum("noij,ncij->oc", grad_output, shifted)
    if mistake == "flipped":
        grad = grad.flip(-2, -1)
    elif mistake == "mean":
        grad = grad / len(x)
    elif mistake == "swapped":
        grad = grad.transpose(0, 1)
    return grad


def _conv_module(x, weight, bias=None, stride=1, padding=0):
    layer = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2:], stride, padding, bias=bias is not None)
    layer.to(x.dtype).weight.data = weight
    if bias is not None:
        layer.bias.data = bias
    return layer(x[None])[0]



WRONG = [
    ("q1", conv_output_size, "float", "floor division"),
    ("q1", conv_output_size, "padding", "padding is ignored"),
    ("q1", conv_output_size, "one side", "one side only"),
    ("q1", conv_output_size, "stride", "stride is ignored"),
    ("q1", conv_output_size, "dilation", "dilation is ignored"),
    ("q1", conv_output_size, "off by one", "off by one"),
    ("q2", corr2d, "flipped", "kernel is flipped"),
    ("q2", corr2d, "transposed", "kernel is transposed"),
    ("q2", corr2d, "output transposed", "output is transposed"),
    ("q2", corr2d, "off by one", "off by one"),
    ("q4", predicted_layer, "groups", "groups are ignored"),
    ("q4", predicted_layer, "bias", "bias is forgotten"),
    ("q4", predicted_layer, "multiplier", "channel multiplier is forgotten"),
    ("q4", predicted_layer, "stride", "stride is ignored"),
    ("q4", predicted_layer, "ceil", "rounded up"),
    ("q5", im2col, "kernel first", "(kernel position, channel)"),
    ("q5", im2col, "columns transposed", "column-major order"),
    ("q5", im2col, "window transposed", "read column by column"),
    ("q5", im2col, "stride", "stride is ignored"),
    ("q3", conv2d, "flipped", "kernel is still flipped"),
    ("q3", conv2d, "padding", "padding is missing"),
    ("q3", conv2d, "top left", "top and left only"),
    ("q3", conv2d, "stride", "stride is ignored"),
    ("q3", conv2d, "unstrided", "windows ignore the stride"),
    ("q3", conv2d, "no bias", "bias is forgotten"),
    ("q3", conv2d, "bias per channel", "once per input channel"),
    ("q3", conv2d, "first channel", "only the first input channel"),
    ("q3", conv2d, "mean", "averaged, not summed"),
    ("q3", conv2d, "swapped axes", "first two axes are swapped"),
    ("q3", conv2d, "unsummed", "one map per (output, input) channel pair"),
    ("q3", conv2d, "output channels", "one map per *input* channel"),
    ("q3", conv2d, "off by one", "off by one"),
    ("q6", conv2d_weight_grad, "flipped", "gradient is flipped"),
    ("q6", conv2d_weight_grad, "first image", "only the first image counts"),
    ("q6", conv2d_weight_grad, "mean", "averaged over the batch"),
    ("q6", conv2d_weight_grad, "swapped", "channel axes are swapped"),
]


def _weight_grad_by_autograd(x, grad_output, k):
    w = torch.zeros(grad_output.shape[1], x.shape[1], k, k, dtype=x.dtype, requires_grad=True)
    return torch.autograd.grad(F.conv2d(x, w), w, grad_output)[0]


def _weight_grad_by_conv(x, grad_output, k):
    # the correlation of the input with dY, as a convolution over the batch axis
    return F.conv2d(x.transpose(0, 1), grad_output.transpose(0, 1)).transpose(0, 1)


CHEATS = [
    ("q1", lambda n, k, s=1, p=0, d=1: F.conv1d(torch.zeros(1, 1, n), torch.zeros(1, 1, k), None, s, p, d).shape[-1]),
    ("q1", lambda n, k, s=1, p=0, d=1: companion.conv.conv_output_size(n, k, s, p, d)),
    ("q2", lambda x, k: F.conv2d(x[None, None], k[None, None])[0, 0]),
    ("q5", lambda x, k, s=1: F.unfold(x[None], k, stride=s)[0]),
    ("q5", lambda x, k, s=1: nn.Unfold(k, stride=s)(x[None])[0]),
    ("q5", lambda x, k, s=1: companion.conv.im2col(x[None], k, s)[0]),
    ("q3", lambda x, w, b=None, s=1, p=0: F.conv2d(x[None], w, b, s, p)[0]),
    ("q3", _conv_module),
    ("q3", lambda x, w, b=None, s=1, p=0: companion.conv.conv2d(x[None], w, b, s, p)[0]),
    ("q6", _weight_grad_by_autograd),
    ("q6", _weight_grad_by_conv),
    ("q6", lambda x, g, k: companion.backward.conv2d_backward(
        g, x, torch.zeros(g.shape[1], x.shape[1], k, k, dtype=x.dtype))[1]),
]
