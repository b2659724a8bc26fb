"""Answers to exercise 06_inception: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F
from torch import nn

import companion.count
import companion.losses
from companion.models.googlenet import InceptionBlock


def label_smoothing_cross_entropy(logits, labels, label_smoothing, *, mistake=None):
    eps, k = label_smoothing, logits.shape[1]
    one_hot = torch.zeros_like(logits)
    one_hot[torch.arange(len(labels)), labels] = 1.0
    targets = {"ignored": one_hot, "others only": (1 - eps) * one_hot + eps / (k - 1) * (1 - one_hot),
               "no share": (1 - eps) * one_hot + eps / k * (1 - one_hot),
               "swapped": eps * one_hot + (1 - eps) / k}.get(mistake, (1 - eps) * one_hot + eps / k)
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (N, K)
    scores = log_p.exp() if mistake == "probabilities" else log_p
    per_example = -(targets * scores).sum(1)  # (N,)
    return per_example.sum() if mistake == "sum" else per_example.mean()


def inception_cost(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, size, bottleneck=True, *,
                   mistake=None):
    k5 = 3 if mistake == "3x3" else 5
    if bottleneck:
        reads3, reads5 = (in_channels, in_channels) if mistake == "unreduced" else (ch3x3red, ch5x5red)
        convs = [(in_channels, ch1x1, 1), (in_channels, ch3x3red, 1), (reads3, ch3x3, 3),
                 (in_channels, ch5x5red, 1), (reads5, ch5x5, k5), (in_channels, pool_proj, 1)]
        out = ch1x1 + ch3x3 + ch5x5 + pool_proj
    else:
        convs = [(in_channels, ch1x1, 1), (in_channels, ch3x3, 3), (in_channels, ch5x5, k5)]
        out = ch1x1 + ch3x3 + ch5x5 + (0 if mistake == "no pool" else in_channels)
    bias = 0 if mistake == "no bias" else 1
    params = sum((k * k * c_in + bias) * c_out for c_in, c_out, k in convs)
    positions = 1 if mistake == "per pixel" else size * size
    macs = sum(positions * c_out * c_in * k * k for c_in, c_out, k in convs)
    if mistake == "doubled":
        macs *= 2
    if mistake == "bias macs":
        macs += sum(positions * c_out for _, c_out, _ in convs)
    return out, params, macs


def factorised_macs(c_in, c_mid, c_out, n, height, width, *, mistake=None):
    positions = 1 if mistake == "per pixel" else height * width
    full = positions * c_out * c_in * n * n
    taps = n * n if mistake == "n squared" else n
    if mistake == "no c_mid":
        c_mid_in, c_mid_out = c_out, c_in
        first, second = positions * c_mid_in * c_in * taps, positions * c_out * c_mid_out * taps
    else:
        first, second = positions * c_mid * c_in * taps, positions * c_out * c_mid * taps
    pair = first * second if mistake == "multiplied" else first + second
    if mistake == "doubled":
        return 2 * full, 2 * pair
    return full, pair


def inception_module(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, *, mistake=None):
    eps = 1e-5 if mistake == "eps" else 1e-3

    class Unit(nn.Module):
        def __init__(self, c_in, c_out, k):
            super().__init__()
            self.conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
            self.bn = nn.BatchNorm2d(c_out, eps=eps)

        def forward(self, x):
            if mistake == "relu first":
                return self.bn(F.relu(self.conv(x)))
            y = self.bn(self.conv(x))
            return y if mistake == "no relu" else F.relu(y)

    pool = nn.AvgPool2d(3, stride=1, padding=1) if mistake == "avg pool" else nn.MaxPool2d(3, stride=1, padding=1)

    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.branch1 = Unit(in_channels, ch1x1, 1)
            self.branch2 = nn.Sequential(Unit(in_channels, ch3x3red, 1), Unit(ch3x3red, ch3x3, 3))
            self.branch3 = nn.Sequential(Unit(in_channels, ch5x5red, 1), Unit(ch5x5red, ch5x5, 5))
            self.branch4 = nn.Sequential(pool, Unit(in_channels, pool_proj, 1))

        def forward(self, x):
            branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
            if mistake == "order":
                branches = branches[::-1]
            return torch.cat(branches, dim=1)

    return Module()


def predicted_parameters(*, mistake=None):
    units = [(320, 32, 1), (320, 32, 1), (32, 32, 3), (320, 32, 1), (32, 48, 3), (48, 64, 3)]  # (in, out, k)
    bn = {"no bn": 0, "running stats": 4}.get(mistake, 2)
    bias = 1 if mistake == "conv bias" else 0
    total = sum(ci * co * k * k + (bn + bias) * co for ci, co, k in units)
    if mistake != "no projection":
        total += (320 if mistake == "projection from 320" else 128) * 320
        total += 0 if mistake == "no projection bias" else 320
    return total


WRONG = [
    ("q5", predicted_parameters, "no bn", "batch norms are forgotten"),
    ("q5", predicted_parameters, "running stats", "running mean and variance are counted"),
    ("q5", predicted_parameters, "conv bias", "are given a bias"),
    ("q5", predicted_parameters, "no projection bias", "projection's bias is forgotten"),
    ("q5", predicted_parameters, "projection from 320", "projection reads 320 channels"),
    ("q5", predicted_parameters, "no projection", "projection is missing"),
    ("q1", label_smoothing_cross_entropy, "ignored", "smoothing is ignored"),
    ("q1", label_smoothing_cross_entropy, "others only", "other K - 1 classes only"),
    ("q1", label_smoothing_cross_entropy, "no share", "still the colleague's bug: the true class misses its share"),
    ("q1", label_smoothing_cross_entropy, "swapped", "eps and 1 - eps are swapped"),
    ("q1", label_smoothing_cross_entropy, "probabilities", "probabilities are used"),
    ("q1", label_smoothing_cross_entropy, "sum", "summed over the batch"),
    ("q2", inception_cost, "no bias", "biases are forgotten"),
    ("q2", inception_cost, "3x3", "counted with a 3x3 kernel"),
    ("q2", inception_cost, "unreduced", "reading all in_channels"),
    ("q2", inception_cost, "no pool", "pooling branch's channels are forgotten"),
    ("q2", inception_cost, "doubled", "counted as two operations"),
    ("q2", inception_cost, "per pixel", "those of one output position"),
    ("q2", inception_cost, "bias macs", "biases are counted as multiply-adds"),
    ("q3", factorised_macs, "n squared", "counted as an n x n convolution"),
    ("q3", factorised_macs, "no c_mid", "c_mid is ignored"),
    ("q3", factorised_macs, "multiplied", "multiplied instead of added"),
    ("q3", factorised_macs, "doubled", "counted as two operations"),
    ("q3", factorised_macs, "per pixel", "per output position"),
    ("q4", inception_module, "avg pool", "pooling branch averages"),
    ("q4", inception_module, "no relu", "ReLU is missing"),
    ("q4", inception_module, "relu first", "ReLU comes before the batch norm"),
    ("q4", inception_module, "eps", "eps is the default 1e-5"),
    ("q4", inception_module, "order", "another order"),
]

CHEATS = [
    ("q1", lambda z, y, eps: F.cross_entropy(z, y, label_smoothing=eps)),
    ("q1", lambda z, y, eps: nn.CrossEntropyLoss(label_smoothing=eps)(z, y)),
    ("q1", lambda z, y, eps: (1 - eps) * F.nll_loss(z.log_softmax(1), y) - eps * z.log_softmax(1).mean()),
    ("q1", lambda z, y, eps: companion.losses.label_smoothing_cross_entropy(z, y, eps)),
    ("q2", lambda c, a, b, d, e, f, g, s, bn=True: (
        a + d + f + (g if bn else c),
        companion.count.count_parameters(nn.Conv2d(c, a, 1)), 0)),
    ("q3", lambda ci, cm, co, n, h, w: (
        companion.count.count_flops(nn.Conv2d(ci, co, n, padding=n // 2), (ci, h, w)), 0)),
    ("q4", lambda *channels: InceptionBlock(*channels, kernel_5x5=5)),
]
