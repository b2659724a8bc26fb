"""Answers to exercise 15_detection: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import math

import torch
import torchvision.ops
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

import companion.boxes


def predicted_iou(*, mistake=None):
    return {None: 1 / 7, "half": 0.5, "one box": 0.25, "sum": 0.125, "range": 7.0}[mistake]


def box_iou(boxes1, boxes2, *, mistake=None):
    a, b = boxes1, boxes2
    if mistake == "xywh":
        a = torch.cat([a[:, :2], a[:, :2] + a[:, 2:]], dim=1)
        b = torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], dim=1)
    if mistake == "pairs":
        lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
        inter = (rb - lt).clamp(min=0).prod(dim=1)
        area_a, area_b = (a[:, 2:] - a[:, :2]).prod(1), (b[:, 2:] - b[:, :2]).prod(1)
        return inter / (area_a + area_b - inter)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2)
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = rb - lt if mistake == "no clamp" else (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    if mistake == "sum":
        return inter / (area_a[:, None] + area_b[None, :])
    if mistake == "first":
        return inter / area_a[:, None]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def batched_nms(boxes, scores, labels, iou_threshold, *, mistake=None):
    iou = box_iou(boxes, boxes)
    order = torch.arange(len(scores)) if mistake == "input order" else torch.argsort(scores, descending=True)
    removed = torch.zeros(len(scores), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if removed[i]:
            continue
        keep.append(i)
        close = iou[i] < iou_threshold if mistake == "below" else iou[i] > iou_threshold
        if mistake != "agnostic":
            close = close & (labels == labels[i])
        removed |= close
        removed[i] = True
    keep = torch.tensor(keep, dtype=torch.int64)
    keep = keep[torch.argsort(scores[keep], descending=True)]
    if mistake == "grouped":
        keep = torch.cat([keep[labels[keep] == c] for c in torch.unique(labels)])
    return keep


def anchor_grid(feature_size, image_size, sizes, aspect_ratios, *, mistake=None):
    (rows, cols), (height, width) = feature_size, image_size
    stride_y, stride_x = height // rows, width // cols
    if mistake == "swapped":
        stride_y, stride_x = stride_x, stride_y
    shapes = []
    pairs = [(r, s) for r in aspect_ratios for s in sizes]
    if mistake == "size major":
        pairs = [(r, s) for s in sizes for r in aspect_ratios]
    for r, s in pairs:
        r = 1 / r if mistake == "inverted" else r
        h, w = s * math.sqrt(r), s / math.sqrt(r)
        shapes.append([-w / 2, -h / 2, w / 2, h / 2])
    base = torch.tensor(shapes, dtype=torch.float32)
    if mistake != "unrounded":
        base = base.round()
    out = []
    for i in range(rows):
        for j in range(cols):
            x, y = j * stride_x, i * stride_y
            if mistake == "centre":
                x, y = x + stride_x / 2, y + stride_y / 2
            out.append(base + torch.tensor([x, y, x, y], dtype=torch.float32))
    return torch.cat(out)


RIGHT = [("q1", predicted_iou), ("q2", box_iou), ("q3", batched_nms), ("q4", anchor_grid)]

WRONG = [
    ("q1", predicted_iou, "half", "half their width *and* half their height"),
    ("q1", predicted_iou, "one box", "intersection over the area of one box"),
    ("q1", predicted_iou, "sum", "counts the shared 4 pixels twice"),
    ("q1", predicted_iou, "range", "between 0 and 1"),
    ("q2", box_iou, "xywh", "wrong format"),
    ("q2", box_iou, "no clamp", "Clamp each at 0"),
    ("q2", box_iou, "sum", "counts the intersection twice"),
    ("q2", box_iou, "first", "area of the first box only"),
    ("q2", box_iou, "pairs", "(N, M) matrix of every pair"),
    ("q3", batched_nms, "agnostic", "class-agnostic"),
    ("q3", batched_nms, "grouped", "grouped by class"),
    ("q3", batched_nms, "input order", "input order"),
    ("q3", batched_nms, "below", "the wrong way round"),
    ("q4", anchor_grid, "centre", "half a stride off"),
    ("q4", anchor_grid, "inverted", "upside down"),
    ("q4", anchor_grid, "size major", "wrong order"),
    ("q4", anchor_grid, "unrounded", "not rounded"),
    ("q4", anchor_grid, "swapped", "strides are swapped"),
]


def _torchvision_anchors(feature_size, image_size, sizes, aspect_ratios):
    generator = AnchorGenerator(sizes=(tuple(sizes),), aspect_ratios=(tuple(aspect_ratios),))
    return generator(ImageList(torch.zeros(1, 1, *image_size), [tuple(image_size)]),
                     [torch.zeros(1, 1, *feature_size)])[0]


def _companion_nms(boxes, scores, labels, iou_threshold):
    return companion.boxes.batched_nms(boxes, scores, labels, iou_threshold)


def _own_loop_with_torchvision_iou(boxes, scores, labels, iou_threshold):
    iou = torchvision.ops.box_iou(boxes, boxes)
    removed = torch.zeros(len(scores), dtype=torch.bool)
    keep = []
    for i in torch.argsort(scores, descending=True).tolist():
        if not removed[i]:
            keep.append(i)
            removed |= (iou[i] > iou_threshold) & (labels == labels[i])
    return torch.tensor(keep, dtype=torch.int64)


def _measured_iou():
    return float(torchvision.ops.box_iou(torch.tensor([[0.0, 0.0, 4.0, 4.0]]),
                                         torch.tensor([[2.0, 2.0, 6.0, 6.0]]))[0, 0])


CHEATS = [
    ("q2", lambda boxes1, boxes2: torchvision.ops.box_iou(boxes1, boxes2)),
    ("q2", lambda boxes1, boxes2: companion.boxes.box_iou(boxes1, boxes2)),
    ("q3", lambda boxes, scores, labels, t: torchvision.ops.batched_nms(boxes, scores, labels, t)),
    ("q3", _companion_nms),
    ("q3", _own_loop_with_torchvision_iou),
    ("q4", _torchvision_anchors),
    ("q4", lambda feature_size, image_size, sizes, aspect_ratios: companion.boxes.anchor_boxes(
        feature_size, image_size, sizes, aspect_ratios)),
]
