"""Answers to exercise 05_alexnet_vgg: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import companion.augment
import companion.count
import companion.models.vgg


def vgg_parameters(config, in_channels=3, num_classes=1000, batch_norm=False, *, mistake=None):
    conv_bias = mistake not in ("conv bias", "all biases")
    linear_bias = mistake not in ("linear bias", "all biases")
    per_channel = {"running stats": 4, "no bn": 0}.get(mistake, 2)
    total, channels = 0, in_channels
    for entry in config:
        if entry == "M":
            continue
        taps = 9 if mistake == "no c_in" else 9 * channels
        total += (taps + conv_bias) * entry + (per_channel * entry if batch_norm else 0)
        channels = entry
    if mistake == "no classifier":
        return total
    first = channels if mistake == "no 7x7" else channels * 7 * 7
    for n_in, n_out in ((first, 4096), (4096, 4096), (4096, num_classes)):
        total += (n_in + linear_bias) * n_out
    return total


def vgg_features(config, in_channels=3, batch_norm=False, *, mistake=None):
    layers, channels = [], in_channels
    for entry in config:
        if entry == "M":
            layers.append(nn.AvgPool2d(2) if mistake == "avg pool" else nn.MaxPool2d(2, 2))
            continue
        conv = nn.Conv2d(channels, entry, 3, padding=0 if mistake == "no padding" else 1, bias=mistake != "no bias")
        norm = [nn.BatchNorm2d(entry)] if batch_norm and mistake != "no bn" else []
        act = [] if mistake == "no relu" else [nn.ReLU(inplace=True)]
        layers += [conv, *act, *norm] if mistake == "bn after relu" else [conv, *norm, *act]
        channels = entry
    return nn.Sequential(*layers)


def dense_scores(z, weight, bias, window, *, mistake=None):
    h, w = window
    c, height, width = z.shape
    step = (h, w) if mistake == "strided" else (1, 1)
    rows, cols = (height - h) // step[0] + 1, (width - w) // step[1] + 1
    if mistake == "one too few":
        rows, cols = rows - 1, cols - 1
    if mistake == "one window":
        rows, cols = 1, 1
    out = weight.new_zeros(weight.shape[0], rows, cols)
    for i in range(rows):
        for j in range(cols):
            patch = z[:, i * step[0]:i * step[0] + h, j * step[1]:j * step[1] + w]  # (C, h, w)
            if mistake == "channels last":
                patch = patch.permute(1, 2, 0)  # (h, w, C)
            if mistake == "transposed":
                patch = patch.transpose(1, 2)  # (C, w, h)
            out[:, i, j] = weight @ patch.reshape(-1) + (0 if mistake == "no bias" else bias)
    return out


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0, *, mistake=None):
    if mistake in ("width", "height"):  # the colleague's bug: the window slides along a spatial axis
        axis = 3 if mistake == "width" else 2
        return local_response_norm(x.movedim(axis, 1), size, alpha, beta, k).movedim(1, axis)
    channels = x.shape[1]
    before, after = size // 2, (size - 1) // 2
    if mistake == "forward":
        before, after = 0, size - 1
    if mistake == "mirrored":
        before, after = after, before
    energy = x if mistake == "no square" else x * x
    padded = F.pad(energy, (0, 0, 0, 0, before, after))  # (N, C + size - 1, H, W): zeros beyond the edges
    total = sum(padded[:, j:j + channels] for j in range(before + after + 1))  # (N, C, H, W)
    if mistake == "count":
        ones = F.pad(torch.ones(channels, dtype=x.dtype), (before, after))
        count = sum(ones[j:j + channels] for j in range(before + after + 1)).view(1, -1, 1, 1)
        mean = total / count
    else:
        mean = total if mistake == "paper alpha" else total / size
    divisor = (0.0 if mistake == "no k" else k) + alpha * mean
    return x / (divisor if mistake == "no beta" else divisor ** beta)


def predicted_score_map(*, mistake=None):
    return {"no window": (12, 16), "strided": (1, 2), "swapped": (10, 6), "four pools": (18, 26),
            "off by one": (5, 9)}.get(mistake, (6, 10))


def rgb_covariance(pixels, *, mistake=None):
    if mistake == "gram":
        return pixels @ pixels.T  # (N, N)
    mean = pixels.mean(dim=1 if mistake == "per pixel" else 0, keepdim=True)
    centred = pixels if mistake == "not centred" else pixels - mean  # (N, 3)
    return centred.T @ centred / (len(pixels) - (0 if mistake == "biased" else 1))


def count_a_built_vgg(config, in_channels=3, num_classes=1000, batch_norm=False):
    with torch.device("meta"):  # shapes only: fast even for VGG16
        model = companion.models.vgg.VGG(list(config), num_classes, in_channels=in_channels, batch_norm=batch_norm)
    return companion.count.count_parameters(model)


WRONG = [
    ("q1", vgg_parameters, "running stats", "running mean and variance of batch norm are counted"),
    ("q1", vgg_parameters, "no bn", "batch norm is not counted"),
    ("q1", vgg_parameters, "conv bias", "biases of the convolutions are forgotten"),
    ("q1", vgg_parameters, "linear bias", "biases of the linear layers are forgotten"),
    ("q1", vgg_parameters, "all biases", "biases are forgotten everywhere"),
    ("q1", vgg_parameters, "no c_in", "input channels are left out"),
    ("q1", vgg_parameters, "no 7x7", "reads C values instead of C * 7 * 7"),
    ("q1", vgg_parameters, "no classifier", "classifier is missing"),
    ("q2", vgg_features, "no relu", "ReLUs are missing"),
    ("q2", vgg_features, "bn after relu", "batch norm comes after the ReLU"),
    ("q2", vgg_features, "no bn", "batch_norm=True is ignored"),
    ("q2", vgg_features, "no padding", "not padded"),
    ("q2", vgg_features, "avg pool", "is an average pool"),
    ("q2", vgg_features, "no bias", "have no bias"),
    ("q3", dense_scores, "channels last", "read channels-last"),
    ("q3", dense_scores, "transposed", "window is transposed"),
    ("q3", dense_scores, "strided", "windows do not overlap"),
    ("q3", dense_scores, "one too few", "one window position too few"),
    ("q3", dense_scores, "one window", "only the first window"),
    ("q3", dense_scores, "no bias", "bias is forgotten"),
    ("q4", local_response_norm, "paper alpha", "alpha is not divided by size"),
    ("q4", local_response_norm, "forward", "not centred"),
    ("q4", local_response_norm, "mirrored", "shifted by one channel"),
    ("q4", local_response_norm, "count", "averaged over the channels that exist"),
    ("q4", local_response_norm, "no square", "not squared"),
    ("q4", local_response_norm, "no beta", "power beta is forgotten"),
    ("q4", local_response_norm, "no k", "k is forgotten"),
    ("q4", local_response_norm, "width", "still the colleague's bug"),
    ("q4", local_response_norm, "height", "still the colleague's bug"),
    ("q5", predicted_score_map, "no window", "size of the feature map"),
    ("q5", predicted_score_map, "strided", "windows do not jump by 7"),
    ("q5", predicted_score_map, "swapped", "rows and columns are swapped"),
    ("q5", predicted_score_map, "four pools", "five max-pools, not four"),
    ("q5", predicted_score_map, "off by one", "off by one"),
    ("q6", rgb_covariance, "per pixel", "still the colleague's bug"),
    ("q6", rgb_covariance, "not centred", "not centred"),
    ("q6", rgb_covariance, "biased", "divided by N"),
    ("q6", rgb_covariance, "gram", "(N, N) matrix"),
]

CHEATS = [
    ("q1", count_a_built_vgg),
    ("q1", lambda config, in_channels=3, num_classes=1000, batch_norm=False: sum(
        p.numel() for p in nn.Sequential(*companion.models.vgg.make_layers(config, in_channels, batch_norm),
                                         nn.Linear(4096, num_classes)).parameters())),
    ("q2", lambda config, in_channels=3, batch_norm=False: nn.Sequential(
        *companion.models.vgg.make_layers(config, in_channels, batch_norm))),
    ("q2", lambda config, in_channels=3, batch_norm=False: torchvision.models.vgg.make_layers(config, batch_norm)),
    ("q3", lambda z, weight, bias, window: F.conv2d(z[None], weight.view(len(weight), -1, *window), bias)[0]),
    ("q3", lambda z, weight, bias, window: torch.conv2d(z[None], weight.reshape(len(weight), z.shape[0], *window),
                                                        bias)[0]),
    ("q4", lambda x, size, alpha=1e-4, beta=0.75, k=1.0: F.local_response_norm(x, size, alpha, beta, k)),
    ("q4", lambda x, size, alpha=1e-4, beta=0.75, k=1.0: nn.LocalResponseNorm(size, alpha, beta, k)(x)),
    ("q6", lambda pixels: torch.cov(pixels.T)),
    ("q6", lambda pixels: torch.from_numpy(np.cov(pixels.numpy(), rowvar=False))),
    ("q6", lambda pixels: companion.augment.rgb_covariance(pixels)),
]
