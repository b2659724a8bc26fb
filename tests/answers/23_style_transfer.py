"""Answers to exercise 23_style_transfer: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F

import companion.style


def predicted_gram(*, mistake=None):
    inner = torch.tensor([[[2.0, 1.0], [1.0, 2.0]]])  # (1, 2, 2): the channels' inner products
    if mistake == "raw":
        return inner
    if mistake == "hw":
        return inner / 4
    if mistake == "no batch":
        return inner[0] / 8
    if mistake == "positions":
        return torch.ones(1, 4, 4)
    return inner / 8


def predicted_growth(*, mistake=None):
    return {None: (9.0, 1.0), "side": (3.0, 1.0), "squared": (81.0, 1.0), "both": (9.0, 9.0)}[mistake]


def gram_matrix(features, *, mistake=None):
    n, c, h, w = features.shape
    if mistake == "scrambled":
        flat = features.reshape(n, h * w, c)
        return flat.transpose(1, 2) @ flat / (c * h * w)
    flat = features.reshape(n, c, h * w)
    if mistake == "positions":
        return flat.transpose(1, 2) @ flat / (c * h * w)
    gram = flat @ flat.transpose(1, 2)
    if mistake == "raw":
        return gram
    if mistake == "hw":
        return gram / (h * w)
    return gram / (c * h * w)


def style_loss(features, style_features, weights, *, mistake=None):
    def gram(f):
        return gram_matrix(f, mistake="raw" if mistake == "raw" else None)

    total = 0.0
    for f, s, w in zip(features, style_features, weights):
        if mistake == "content":
            term = ((f - s) ** 2).mean()
        elif mistake == "sum":
            term = ((gram(f) - gram(s)) ** 2).sum()
        elif mistake == "norm":
            term = ((gram(f) - gram(s)) ** 2).sum().sqrt()
        else:
            term = ((gram(f) - gram(s)) ** 2).mean()
        total = total + (1.0 if mistake == "no weights" else w) * term
    return total


def _features(image, weight):
    return torch.relu(F.conv2d(image, weight, padding=1))


def _transfer_loss(image, weight, target, style_gram):
    f = _features(image, weight)
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    gram = flat @ flat.transpose(1, 2) / (c * h * w)
    return ((f - target) ** 2).mean() + 100 * ((gram - style_gram) ** 2).mean()


def stylise(content, weight, style_gram, steps, lr, *, mistake=None):
    with torch.no_grad():
        target = _features(content, weight)
    image = content if mistake == "in place" else content.clone()
    image.requires_grad_(True)
    if mistake == "weights":
        weight.requires_grad_(True)
    opt = torch.optim.Adam([weight] if mistake == "weights" else [image], lr=lr)
    for _ in range(steps):
        if mistake != "no zero_grad":
            opt.zero_grad()
        loss = _transfer_loss(image, weight, target, style_gram)
        loss.backward()
        opt.step()
        if mistake != "no clamp":
            with torch.no_grad():
                image.clamp_(0, 1)
    return image.detach()


RIGHT = [("q1", predicted_gram), ("q2", predicted_growth), ("q3", gram_matrix), ("q4", style_loss),
         ("q5", stylise)]

WRONG = [
    ("q1", predicted_gram, "raw", "not normalised"),
    ("q1", predicted_gram, "hw", "divided by H * W = 4 only"),
    ("q1", predicted_gram, "no batch", "batch dimension is missing"),
    ("q1", predicted_gram, "positions", "Gram matrix of the positions"),
    ("q2", predicted_growth, "side", "how much the side grows"),
    ("q2", predicted_growth, "squared", "81 squares the growth"),
    ("q2", predicted_growth, "both", "it does not change"),
    ("q3", gram_matrix, "raw", "not normalised"),
    ("q3", gram_matrix, "hw", "divided by H * W only"),
    ("q3", gram_matrix, "scrambled", "reshaped to (N, H*W, C) directly"),
    ("q3", gram_matrix, "positions", "Gram matrix of the positions"),
    ("q4", style_loss, "raw", "not normalised"),
    ("q4", style_loss, "sum", "summed"),
    ("q4", style_loss, "no weights", "weights are ignored"),
    ("q4", style_loss, "content", "that is the content loss"),
    ("q4", style_loss, "norm", "norm of the difference"),
    ("q5", stylise, "weights", "still the colleague's bug"),
    ("q5", stylise, "in place", "content image itself is optimised"),
    ("q5", stylise, "no zero_grad", "never zeroed"),
    ("q5", stylise, "no clamp", "not clamped"),
]


def _companion_gram(features):
    return companion.style.gram_matrix(features)


def _companion_style_loss(features, style_features, weights):
    return companion.style.style_loss(features, [companion.style.gram_matrix(s) for s in style_features], weights)


CHEATS = [
    ("q3", _companion_gram),
    ("q4", _companion_style_loss),
]
