"""Answers to exercise 17_segmentation: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

import companion.metrics
import companion.segmentation


def predicted_field(*, mistake=None):
    return {None: 31, "no dilation": 9, "last layer": 17, "spans": 34, "distance": 30}[mistake]


def dice_from_logits(logits, target, *, mistake=None):
    if mistake == "logits":  # the colleague's function
        target = target.float()
        return 2 * (logits * target).sum(dim=(1, 2)) / (logits.sum(dim=(1, 2)) + target.sum(dim=(1, 2)))
    if mistake == "soft":
        pred = logits.sigmoid()
    else:
        pred = (logits > (0.5 if mistake == "half" else 0.0)).float()
    target = target.float()
    if mistake == "batch":
        return 2 * (pred * target).sum() / (pred.sum() + target.sum())
    inter = (pred * target).sum(dim=(1, 2))
    total = pred.sum(dim=(1, 2)) + target.sum(dim=(1, 2))
    if mistake == "empty":
        return 2 * inter / total.clamp(min=1e-12)
    return torch.where(total > 0, 2 * inter / total.clamp(min=1e-12), torch.ones_like(total))


def crop_and_concat(skip, x, *, mistake=None):
    h, w = x.shape[-2:]
    top, left = (skip.shape[-2] - h) // 2, (skip.shape[-1] - w) // 2
    if mistake == "corner":
        top = left = 0
    if mistake == "same margin":
        left = top
    cropped = skip[:, :, top:top + h, left:left + w]
    if mistake == "resized":
        cropped = F.interpolate(skip, size=(h, w), mode="bilinear", align_corners=False)
    if mistake == "added":
        return cropped + x
    return torch.cat([x, cropped] if mistake == "swapped" else [cropped, x], dim=1)


def reached_offsets(dilations, kernel_size, *, mistake=None):
    size = 1 + (kernel_size - 1) * sum(dilations)
    if mistake == "whole field":
        return torch.ones(size, dtype=torch.bool)
    if mistake == "last layer":
        d = dilations[-1]
        out = torch.zeros(size, dtype=torch.bool)
        first = (size - 1) // 2 - (kernel_size - 1) // 2 * d
        for t in range(kernel_size):
            out[first + t * d] = True
        return out
    if mistake == "short":
        size -= 1
    offsets, step = {0}, 1
    for d in dilations:
        step = step * d if mistake == "multiplied" else d
        offsets = {o + t * step for o in offsets for t in range(kernel_size)}
    out = torch.zeros(size, dtype=torch.bool)
    for o in offsets:
        if o < size:
            out[o] = True
    return out


RIGHT = [("q1", predicted_field), ("q2", dice_from_logits), ("q3", crop_and_concat), ("q4", reached_offsets)]

WRONG = [
    ("q1", predicted_field, "no dilation", "the dilation is forgotten"),
    ("q1", predicted_field, "last layer", "the last layer alone"),
    ("q1", predicted_field, "spans", "adds up the spans"),
    ("q1", predicted_field, "distance", "the distance from the first to the last pixel"),
    ("q2", dice_from_logits, "logits", "the colleague's bug"),
    ("q2", dice_from_logits, "soft", "soft Dice"),
    ("q2", dice_from_logits, "half", "thresholded at 0.5"),
    ("q2", dice_from_logits, "empty", "both masks are empty"),
    ("q2", dice_from_logits, "batch", "one number for the whole batch"),
    ("q3", crop_and_concat, "corner", "top-left corner"),
    ("q3", crop_and_concat, "swapped", "in the other order"),
    ("q3", crop_and_concat, "resized", "resized"),
    ("q3", crop_and_concat, "same margin", "the height's margin is used for the width"),
    ("q3", crop_and_concat, "added", "added, not concatenated"),
    ("q4", reached_offsets, "whole field", "gridding effect"),
    ("q4", reached_offsets, "multiplied", "as if they were strides"),
    ("q4", reached_offsets, "last layer", "only the taps of the last layer"),
    ("q4", reached_offsets, "short", "one entry per pixel of the receptive field"),
]


def _torchvision_crop(skip, x):
    return torch.cat([TF.center_crop(skip, list(x.shape[-2:])), x], dim=1)


CHEATS = [
    ("q2", lambda logits, target: companion.metrics.dice_score(logits > 0, target)),
    ("q3", _torchvision_crop),
    ("q4", lambda dilations, kernel_size: companion.segmentation.reached_offsets(dilations, kernel_size)),
]
