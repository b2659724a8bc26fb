"""Answers to exercise 20_autoencoders: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F
from sklearn.neighbors import NearestNeighbors
from torch import nn

import companion.autoencoder
import companion.upsample


def transposed_output_size(n, kernel, stride=1, padding=0, output_padding=0, dilation=1, *, mistake=None):
    if mistake == "forward":
        return (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    span = kernel if mistake == "no dilation" else dilation * (kernel - 1) + 1
    steps = n if mistake == "n stride" else n - 1
    crop = padding if mistake == "one padding" else 2 * padding
    extra = 0 if mistake == "no output padding" else output_padding
    return steps * stride - crop + span + extra


def denoising_loss(model, clean, noise, *, mistake=None):
    noisy = clean + noise
    if mistake != "no clip":
        noisy = noisy.clamp(0, 1)
    seen = clean if mistake in ("clean input", "both swapped") else noisy
    target = noisy if mistake in ("noisy target", "both swapped") else clean
    per_pixel = F.binary_cross_entropy_with_logits(model(seen), target, reduction="none")
    return per_pixel.sum() if mistake == "sum" else per_pixel.mean()


def precision_at_k(codes, labels, k, *, mistake=None):
    if mistake == "cosine":
        unit = codes / codes.norm(dim=1, keepdim=True)
        d = 1 - unit @ unit.T
    else:
        d = ((codes[:, None, :] - codes[None, :, :]) ** 2).sum(-1).sqrt()  # (N, N)
    if mistake not in ("self counted", "drop first"):
        d = d + torch.diag(torch.full((len(codes),), float("inf"), dtype=d.dtype))
    order = d.argsort(dim=1)[:, :k]  # (N, k)
    if mistake == "drop first":
        order = order[:, 1:]
    relevant = (labels[order] == labels[:, None]).double()
    if mistake == "k + 1":
        return ((relevant.sum(1) + 1) / (k + 1)).mean().item()
    return relevant.mean().item()


def reconstruction_loss(logits, normalised, mean, std, *, mistake=None):
    target = normalised * std + mean
    if mistake == "normalised target":
        target = normalised
    elif mistake == "normalised twice":
        target = (normalised - mean) / std
    elif mistake == "wrong order":
        target = (normalised + mean) * std
    a = torch.sigmoid(logits) if mistake == "double sigmoid" else logits
    if mistake == "naive":
        p = torch.sigmoid(a)
        per_pixel = -(target * torch.log(p) + (1 - target) * torch.log(1 - p))
    else:
        per_pixel = a.clamp(min=0) - a * target + torch.log1p(torch.exp(-a.abs()))
    return per_pixel.sum() if mistake == "sum" else per_pixel.mean()


WRONG = [
    ("q1", transposed_output_size, "forward", "the output size of the forward convolution"),
    ("q1", transposed_output_size, "no output padding", "output_padding is missing"),
    ("q1", transposed_output_size, "one padding", "the padding is subtracted once"),
    ("q1", transposed_output_size, "no dilation", "the dilation is ignored"),
    ("q1", transposed_output_size, "n stride", "the input is stretched to n * stride"),
    ("q2", denoising_loss, "noisy target", "compared with the noisy input"),
    ("q2", denoising_loss, "clean input", "the network sees the clean image"),
    ("q2", denoising_loss, "no clip", "is not clipped to [0, 1]"),
    ("q2", denoising_loss, "sum", "summed over the pixels"),
    ("q2", denoising_loss, "both swapped", "both are the wrong way round"),
    ("q3", precision_at_k, "self counted", "each query is its own nearest neighbour"),
    ("q3", precision_at_k, "drop first", "only k - 1 results are scored"),
    ("q3", precision_at_k, "k + 1", "out of k + 1"),
    ("q3", precision_at_k, "cosine", "these are cosine distances"),
    ("q4", reconstruction_loss, "normalised target", "the targets are the normalised images"),
    ("q4", reconstruction_loss, "normalised twice", "normalised a second time"),
    ("q4", reconstruction_loss, "wrong order", "the mean is added before multiplying by std"),
    ("q4", reconstruction_loss, "double sigmoid", "the sigmoid is applied twice"),
    ("q4", reconstruction_loss, "sum", "summed over the pixels"),
    ("q4", reconstruction_loss, "naive", "the loss overflows for large logits"),
]


def _size_by_the_layer(n, kernel, stride=1, padding=0, output_padding=0, dilation=1):
    layer = nn.ConvTranspose2d(1, 1, kernel, stride, padding, output_padding, dilation=dilation)
    return int(layer(torch.zeros(1, 1, n, n)).shape[-1])


def _precision_by_sklearn(codes, labels, k):
    _, nearest = NearestNeighbors(n_neighbors=k).fit(codes.numpy()).kneighbors()
    return (labels[torch.from_numpy(nearest)] == labels[:, None]).double().mean().item()


def _precision_by_the_index(codes, labels, k):
    index = companion.autoencoder.EmbeddingIndex(codes)
    return companion.autoencoder.retrieval_precision(index, labels, codes, labels, (k,),
                                                     exclude=torch.arange(len(codes)))[k]


CHEATS = [
    ("q1", _size_by_the_layer),
    ("q1", lambda n, kernel, stride=1, padding=0, output_padding=0, dilation=1:
        companion.upsample.conv_transpose_output_size(n, kernel, stride, padding, output_padding)
        + (dilation - 1) * (kernel - 1)),
    ("q2", lambda model, clean, noise: companion.autoencoder.reconstruction_loss(
        model((clean + noise).clamp(0, 1)), clean)),
    ("q3", _precision_by_sklearn),
    ("q3", _precision_by_the_index),
    ("q4", lambda logits, normalised, mean, std: F.binary_cross_entropy_with_logits(logits, normalised * std + mean)),
]
