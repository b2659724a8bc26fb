"""Answers to exercise 02_pooling: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F
from torch import nn

import companion.backward
import companion.pool


def predicted_field(*, mistake=None):
    return {"jump": 15, "dilation": 24, "early": 31, "off by one": 29}.get(mistake, 28)


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


def max_pool2d_backward(grad_output, x, kernel_size, stride=None, *, mistake=None):
    k, s = kernel_size, kernel_size if stride is None else stride
    n, c, out_h, out_w = grad_output.shape
    grad = torch.zeros_like(x)
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, :, i * s:i * s + k, j * s:j * s + k].reshape(n, c, k * k)  # (N, C, k*k)
            share = grad_output[:, :, i, j, None]  # (N, C, 1)
            if mistake == "every input":
                block = share.expand(-1, -1, k * k)
            elif mistake == "mean":
                block = share.expand(-1, -1, k * k) / (k * k)
            elif mistake == "ties":
                block = share * (window == window.amax(dim=-1, keepdim=True))
            else:
                index = window.argmax(dim=-1, keepdim=True)
                if mistake == "last":
                    index = k * k - 1 - window.flip(-1).argmax(dim=-1, keepdim=True)
                block = torch.zeros_like(window).scatter(-1, index, share)
            block = block.reshape(n, c, k, k)
            target = grad[:, :, i * s:i * s + k, j * s:j * s + k]
            if mistake == "overwrite":
                target.copy_(torch.where(block != 0, block, target))
            else:
                target += block
    return grad


WRONG = [
    ("q1", predicted_field, "jump", "jump is forgotten"),
    ("q1", predicted_field, "dilation", "dilation is forgotten"),
    ("q1", predicted_field, "early", "updated too early"),
    ("q1", predicted_field, "off by one", "off by one"),
    ("q3", max_pool2d, "default 1", "stride=None is taken as 1"),
    ("q3", max_pool2d, "stride", "stride is ignored"),
    ("q3", max_pool2d, "average", "average pooling"),
    ("q3", max_pool2d, "zero start", "starts at 0"),
    ("q3", max_pool2d, "absolute", "largest absolute value"),
    ("q3", max_pool2d, "channels", "channels are mixed"),
    ("q3", max_pool2d, "ceil", "stick out of the input"),
    ("q3", max_pool2d, "off by one", "off by one"),
    ("q2", max_pool2d_backward, "every input", "still the colleague's bug"),
    ("q2", max_pool2d_backward, "mean", "average pooling's backward"),
    ("q2", max_pool2d_backward, "ties", "every tied maximum"),
    ("q2", max_pool2d_backward, "last", "last maximum"),
    ("q2", max_pool2d_backward, "overwrite", "overwrite each other"),
]

def _by_autograd(grad_output, x, k, s=None):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(F.max_pool2d(x, k, s), x, grad_output)[0]


def _by_indices(grad_output, x, k, s=None):
    _, indices = F.max_pool2d(x, k, s, return_indices=True)
    flat = torch.zeros_like(x).flatten(2)
    return flat.scatter_add_(2, indices.flatten(2), grad_output.flatten(2)).view_as(x)


CHEATS = [
    ("q1", lambda: companion.pool.receptive_field([(3, 1, 1), (3, 1, 1), (2, 2, 0), (3, 1, 1), (3, 1, 2, 2),
                                                   (2, 2, 0), (3, 1, 1)]).size),
    ("q3", lambda x, k, s=None: F.max_pool2d(x, k, s)),
    ("q3", lambda x, k, s=None: nn.MaxPool2d(k, s)(x)),
    ("q2", _by_autograd),
    ("q2", _by_indices),
    ("q2", lambda g, x, k, s=None: companion.backward.max_pool2d_backward(g, x, k, s)),
]
