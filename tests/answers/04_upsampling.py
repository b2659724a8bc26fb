"""Answers to exercise 04_upsampling: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F
from torch import nn

import companion.upsample


def source_coordinate(i, in_size, out_size, align_corners, *, mistake=None):
    if mistake == "mixed up":
        align_corners = not align_corners
    n_in, n_out = (out_size, in_size) if mistake == "inverted" else (in_size, out_size)
    if align_corners:
        u = i * (n_in - 1) / (n_out - 1)
    else:
        u = i * n_in / n_out if mistake == "no offset" else (i + 0.5) * n_in / n_out - 0.5
    return u if mistake == "no clamp" else min(max(u, 0.0), in_size - 1.0)


def bilinear_resize(x, size, align_corners=False, *, mistake=None):
    if mistake == "swapped":
        size = size[::-1]
    corners = (not align_corners) if mistake == "align_corners" else align_corners

    def neighbours(n_in, n_out):
        i = torch.arange(n_out, dtype=x.dtype)
        u = i * (n_in - 1) / (n_out - 1) if corners else (i + 0.5) * n_in / n_out - 0.5
        if mistake != "no clamp":
            u = u.clamp(0, n_in - 1)
        first = u.floor().long()  # -1 left of the image when u is not clamped
        return first, (first + 1).clamp(max=n_in - 1), (u - first) * (mistake != "nearest")  # t = 0: nearest

    r0, r1, ty = neighbours(x.shape[1], size[0])
    q0, q1, tx = neighbours(x.shape[2], size[1])
    ty = ty[:, None]  # (h,) -> (h, 1)
    rows = (1 - ty) * x[:, r0, :] + ty * x[:, r1, :]  # (C, h, W); a wrapped index -1 reads the last row
    return (1 - tx) * rows[:, :, q0] + tx * rows[:, :, q1]  # (C, h, w)


def conv_transpose2d(x, weight, stride=1, *, mistake=None):
    weight = {"flipped": weight.flip(-2, -1), "swapped axes": weight.transpose(0, 1)}.get(mistake, weight)
    step = 1 if mistake == "stride" else stride
    k = weight.shape[-1]
    height, width = x.shape[1:]
    extra = mistake == "off by one"
    out = x.new_zeros(weight.shape[1], (height - 1) * step + k + extra, (width - 1) * step + k)
    for i in range(height):
        for j in range(width):
            stamp = (x[:, i, j, None, None, None] * weight).sum(0)  # (C_out, k, k)
            if mistake == "overwrite":
                out[:, i * step:i * step + k, j * step:j * step + k] = stamp
            else:
                out[:, i * step:i * step + k, j * step:j * step + k] += stamp
    return out


def predicted_taps(*, mistake=None):
    if mistake == "stride":  # stamps 1 apart
        return [1, 2, 3, 4, 4, 3, 2, 1]
    if mistake == "length":  # n * s + k outputs
        return [1, 1, 1, 2, 2, 1, 2, 2, 1, 2, 2, 1, 1, 1, 0, 0, 0]
    if mistake == "even":  # k / s rounded, everywhere inside
        return [1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1]
    if mistake == "tensor":  # the right counts, as a tensor of floats: accepted
        return torch.tensor([1.0, 1, 1, 2, 2, 1, 2, 2, 1, 2, 2, 1, 1, 1])
    return [1, 1, 1, 2, 2, 1, 2, 2, 1, 2, 2, 1, 1, 1]


# (exercise, question, implementation, its mistake, words of the message it must get)


WRONG = [
    ("q1", source_coordinate, "mixed up", "align_corners is mixed up"),
    ("q1", source_coordinate, "no offset", "still the colleague's bug: the half-pixel offset is missing"),
    ("q1", source_coordinate, "inverted", "scale is inverted"),
    ("q1", source_coordinate, "no clamp", "not clamped"),
    ("q2", bilinear_resize, "nearest", "nearest-neighbour resizing"),
    ("q2", bilinear_resize, "align_corners", "align_corners is ignored or mixed up"),
    ("q2", bilinear_resize, "swapped", "height and width are swapped"),
    ("q2", bilinear_resize, "no clamp", "the border is wrong"),
    ("q3", conv_transpose2d, "stride", "stride is ignored"),
    ("q3", conv_transpose2d, "flipped", "kernel is flipped"),
    ("q3", conv_transpose2d, "swapped axes", "first two axes are swapped"),
    ("q3", conv_transpose2d, "off by one", "off by one"),
    ("q3", conv_transpose2d, "overwrite", "overlapping stamps overwrite each other"),
    ("q4", predicted_taps, "stride", "the stride is ignored"),
    ("q4", predicted_taps, "length", "the length is wrong"),
    ("q4", predicted_taps, "even", "the overlap is not even"),
]

CHEATS = [
    ("q1", lambda i, n, m, a: float(F.interpolate(torch.arange(float(n))[None, None], m, mode="linear", align_corners=a)[0, 0, i])),
    ("q1", lambda i, n, m, a: float(companion.upsample.source_coordinates(n, m, a)[2][i])),
    ("q2", lambda x, size, a=False: F.interpolate(x[None], size, mode="bilinear", align_corners=a)[0]),
    ("q2", lambda x, size, a=False: nn.Upsample(size, mode="bilinear", align_corners=a)(x[None])[0]),
    ("q2", lambda x, size, a=False: companion.upsample.bilinear_resize(x[None], size, a)[0]),
    ("q3", lambda x, w, s=1: F.conv_transpose2d(x[None], w, stride=s)[0]),
    ("q3", lambda x, w, s=1: companion.upsample.conv_transpose2d(x, w, stride=s)),
    ("q3", lambda x, w, s=1: torch.func.vjp(
        lambda z: F.conv2d(z, w, stride=s), x.new_zeros(1, x.shape[0], (x.shape[1] - 1) * s + w.shape[-1],
                                                       (x.shape[2] - 1) * s + w.shape[-1]))[1](x[None])[0][0]),
]
