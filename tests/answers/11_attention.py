"""Answers to exercise 11_attention: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import math

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import companion.models.attention
import companion.models.se
import companion.models.vit


class _SqueezeExcite(nn.Module):
    """An SE block with nn.Linear layers (the grader reshapes torchvision's 1x1-convolution weights)."""

    def __init__(self, channels, reduction, mistake=None):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)
        self.mistake = mistake

    def forward(self, x):
        n, c = x.shape[:2]
        z = x.amax((2, 3)) if self.mistake == "max" else x.mean((2, 3))  # (N, C)
        h = self.fc1(z)
        h = h if self.mistake == "no relu" else torch.relu(h)
        s = self.fc2(h)
        s = s.softmax(dim=1) if self.mistake == "softmax" else torch.sigmoid(s)  # (N, C)
        if self.mistake == "gates":
            return s.view(n, c, 1, 1)
        if self.mistake == "width":
            return x * s.view(n, 1, 1, c)  # broadcasts over the columns (an error unless W == C)
        return x * s.view(n, c, 1, 1)


def se_block(channels, reduction, *, mistake=None):
    return _SqueezeExcite(channels, reduction, mistake)


def patchify(x, patch_size, *, mistake=None):
    n, c, h, w = x.shape
    p = patch_size
    grid = x.reshape(n, c, h // p, p, w // p, p)  # (N, C, rows, p, cols, p)
    order = {"column order": (0, 4, 2, 1, 3, 5), "channel last": (0, 2, 4, 3, 5, 1),
             "swapped inside": (0, 2, 4, 1, 5, 3)}.get(mistake, (0, 2, 4, 1, 3, 5))
    patches = grid.permute(*order).reshape(n, (h // p) * (w // p), c * p * p)  # (N, P, C*p*p)
    return patches.transpose(1, 2) if mistake == "not transposed" else patches


class _SelfAttention(nn.Module):
    """SAGAN's layer, right or with one mistake."""

    def __init__(self, channels, mistake=None):
        super().__init__()
        self.query = nn.Conv2d(channels, channels // 8, 1)
        self.key = nn.Conv2d(channels, channels // 8, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.full((1,), 0.1) if mistake == "gamma" else torch.zeros(1))
        self.mistake = mistake

    def forward(self, x):
        n, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (N, M, C/8)
        k = self.key(x).flatten(2)                    # (N, C/8, M)
        v = self.value(x).flatten(2)                  # (N, C, M)
        scores = q @ k / (math.sqrt(q.shape[-1]) if self.mistake == "scaled" else 1.0)
        beta = scores.softmax(dim=1 if self.mistake == "axis" else -1)  # (N, M, M)
        o = (v @ beta if self.mistake == "transposed" else v @ beta.transpose(1, 2)).view(n, c, h, w)
        return self.gamma * o if self.mistake == "no shortcut" else self.gamma * o + x


def sagan_layer(channels, *, mistake=None):
    return _SelfAttention(channels, mistake)


def predicted_entries(*, mistake=None):
    return {None: 8 * 1024 ** 2, "per channel": 8 * 8 * 1024 ** 2, "linear": 8 * 1024, "one image": 1024 ** 2,
            "channels": 8 * 64 * 1024}[mistake]


def predicted_parameters(*, mistake=None):
    return {None: 5201, "gamma": 5200, "biases": 5201 - 80, "biases and gamma": 5120, "full q k": 3 * 4160 + 1,
            "size": 8 * 1024 ** 2}[mistake]


# (exercise, question, implementation, its mistake, words of the message it must get)


WRONG = [
    ("q1", se_block, "softmax", "gates come from a softmax"),
    ("q1", se_block, "max", "squeeze takes the maximum"),
    ("q1", se_block, "no relu", "ReLU between the two layers is missing"),
    ("q1", se_block, "gates", "returns the gates"),
    ("q1", se_block, "width", "gates multiply the wrong axis"),
    ("q2", patchify, "column order", "listed column by column"),
    ("q2", patchify, "channel last", "channel last"),
    ("q2", patchify, "swapped inside", "rows and columns are swapped"),
    ("q2", patchify, "not transposed", "(N, patch_dim, num_patches)"),
    ("q3", sagan_layer, "axis", "still the colleague's bug"),
    ("q3", sagan_layer, "gamma", "gamma does not start at 0"),
    ("q3", sagan_layer, "scaled", "divided by sqrt(d)"),
    ("q3", sagan_layer, "transposed", "applied transposed"),
    ("q3", sagan_layer, "no shortcut", "shortcut is missing"),
    ("q4", predicted_entries, "per channel", "no channel axis"),
    ("q4", predicted_entries, "linear", "one number per position"),
    ("q4", predicted_entries, "one image", "the map of one image"),
    ("q4", predicted_entries, "channels", "channels do not set the map's size"),
    ("q5", predicted_parameters, "gamma", "gamma is forgotten"),
    ("q5", predicted_parameters, "biases", "the biases are forgotten"),
    ("q5", predicted_parameters, "biases and gamma", "biases and gamma are forgotten"),
    ("q5", predicted_parameters, "full q k", "counted with C channels"),
    ("q5", predicted_parameters, "size", "grows with the feature map"),
]


class _SaganWithTorch(_SelfAttention):
    """The layer with torch's fused attention inside."""

    def forward(self, x):
        n, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (N, M, C/8)
        k = self.key(x).flatten(2).transpose(1, 2)    # (N, M, C/8)
        v = self.value(x).flatten(2).transpose(1, 2)  # (N, M, C)
        o = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return self.gamma * o.transpose(1, 2).reshape(n, c, h, w) + x


class _Subclassed(torchvision.ops.SqueezeExcitation):
    def __init__(self, channels, reduction):
        super().__init__(channels, channels // reduction)


CHEATS = [
    ("q1", lambda c, r: torchvision.ops.SqueezeExcitation(c, c // r)),
    ("q1", lambda c, r: companion.models.se.SEBlock(c, r)),
    ("q1", _Subclassed),
    ("q2", lambda x, p: F.unfold(x, p, stride=p).transpose(1, 2)),
    ("q2", lambda x, p: nn.Unfold(p, stride=p)(x).transpose(1, 2)),
    ("q2", lambda x, p: F.conv2d(x.flatten(0, 1)[:, None], torch.eye(p * p, dtype=x.dtype).view(-1, 1, p, p), stride=p)
     .view(x.shape[0], -1, (x.shape[2] // p) * (x.shape[3] // p)).transpose(1, 2)),
    ("q3", lambda c: companion.models.attention.SelfAttention2d(c)),
    ("q3", _SaganWithTorch),
]
