"""Answers to exercise 16_yolo: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import math

import torch

import companion.yolo


def predicted_noobj(*, mistake=None):
    return {None: 125, "empty cells": 122, "all": 128, "cells": 61, "responsible": 3, "range": 130.5}[mistake]


def yolo_targets(boxes, labels, grid, num_classes, image_size, *, mistake=None):
    out = torch.zeros(grid, grid, 5 + num_classes)
    for box, label in zip(boxes.tolist(), labels.tolist()):
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        cx, cy = ((x0, y0) if mistake == "corner" else ((x0 + x1) / 2, (y0 + y1) / 2))
        gx, gy = grid * cx / image_size, grid * cy / image_size
        j, i = min(max(math.floor(gx), 0), grid - 1), min(max(math.floor(gy), 0), grid - 1)
        x, y = gx - j, gy - i
        if mistake == "across":
            x, y = cx / image_size, cy / image_size
        if mistake == "swapped":
            i, j = j, i
        if out[i, j, 4] > 0:
            continue
        sw, sh = (w / image_size, h / image_size) if mistake == "no sqrt" else (
            math.sqrt(w / image_size), math.sqrt(h / image_size))
        out[i, j, :5] = torch.tensor([x, y, sw, sh, 1.0])
        out[i, j, 5 + label] = 1.0
    return out


def _unit_boxes(cells, s):
    """(N, S, S, K, 4) cells -> xyxy in a unit image."""
    j = torch.arange(s, dtype=cells.dtype)[None, None, :, None]
    i = torch.arange(s, dtype=cells.dtype)[None, :, None, None]
    cx, cy = (cells[..., 0] + j) / s, (cells[..., 1] + i) / s
    w, h = cells[..., 2] ** 2, cells[..., 3] ** 2
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def yolo_loss(pred, target, num_boxes, *, mistake=None):
    n, s = pred.shape[:2]
    boxes = pred[..., :5 * num_boxes].reshape(n, s, s, num_boxes, 5)
    has = target[..., 4]
    mine, true = _unit_boxes(boxes, s), _unit_boxes(target[..., None, :4], s)
    lt, rb = torch.maximum(mine[..., :2], true[..., :2]), torch.minimum(mine[..., 2:], true[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda b: (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)  # noqa: E731
    iou = inter / (area(mine) + area(true) - inter).clamp(min=1e-30)  # (N, S, S, B)
    mask = torch.nn.functional.one_hot(iou.argmax(-1), num_boxes).to(pred.dtype) * has[..., None]
    coord, no_object = (0.5, 5.0) if mistake == "swapped weights" else (5.0, 0.5)
    box = (mask * ((boxes[..., :4] - target[..., None, :4]) ** 2).sum(-1)).sum()
    goal = torch.ones_like(iou) if mistake == "target 1" else iou.detach()
    obj = (mask * (boxes[..., 4] - goal) ** 2).sum()
    away = 1 - mask
    if mistake == "noobj all":
        away = torch.ones_like(mask)
    if mistake == "noobj empty":
        away = (1 - has)[..., None].expand_as(mask)
    noobj = (away * boxes[..., 4] ** 2).sum()
    where = torch.ones_like(has) if mistake == "class everywhere" else has
    cls = (where * ((pred[..., 5 * num_boxes:] - target[..., 5:]) ** 2).sum(-1)).sum()
    total = coord * box + obj + no_object * noobj + cls
    return total if mistake == "not per image" else total / n


def decode_boxes(pred, num_boxes, image_size, *, mistake=None):
    n, s = pred.shape[:2]
    cells = pred[..., :5 * num_boxes].reshape(n, s, s, num_boxes, 5)
    j = torch.arange(s, dtype=pred.dtype)[None, None, :, None]
    i = torch.arange(s, dtype=pred.dtype)[None, :, None, None]
    if mistake == "swapped":
        i, j = j, i
    if mistake == "no offset":
        i, j = torch.zeros_like(i), torch.zeros_like(j)
    cx = (cells[..., 0] + j) * image_size / s
    cy = (cells[..., 1] + i) * image_size / s
    power = 1 if mistake == "not squared" else 2
    w, h = cells[..., 2] ** power * image_size, cells[..., 3] ** power * image_size
    if mistake == "cxcywh":
        return torch.stack([cx, cy, w, h], -1)
    half = 1 if mistake == "whole" else 2
    return torch.stack([cx - w / half, cy - h / half, cx + w / half, cy + h / half], -1)


RIGHT = [("q1", predicted_noobj), ("q2", yolo_targets), ("q3", yolo_loss), ("q4", decode_boxes)]

WRONG = [
    ("q1", predicted_noobj, "empty cells", "122 leaves out the whole cells"),
    ("q1", predicted_noobj, "all", "128 puts the responsible predictors"),
    ("q1", predicted_noobj, "cells", "61 counts cells, not predictors"),
    ("q1", predicted_noobj, "responsible", "3 is the number of responsible predictors"),
    ("q1", predicted_noobj, "range", "a whole number between 0 and 128"),
    ("q2", yolo_targets, "swapped", "rows and columns are swapped"),
    ("q2", yolo_targets, "no sqrt", "no square roots"),
    ("q2", yolo_targets, "across", "across the whole image"),
    ("q2", yolo_targets, "corner", "top-left corner"),
    ("q3", yolo_loss, "noobj all", "also covers the responsible predictors"),
    ("q3", yolo_loss, "noobj empty", "only the cells without an object"),
    ("q3", yolo_loss, "target 1", "the IoU of its predicted box"),
    ("q3", yolo_loss, "class everywhere", "class term is summed over every cell"),
    ("q3", yolo_loss, "not per image", "not divided by their number N"),
    ("q3", yolo_loss, "swapped weights", "the two weights are swapped"),
    ("q4", decode_boxes, "not squared", "not squared"),
    ("q4", decode_boxes, "swapped", "rows and columns are swapped"),
    ("q4", decode_boxes, "no offset", "the cell's position is left out"),
    ("q4", decode_boxes, "whole", "a whole width from the centre"),
    ("q4", decode_boxes, "cxcywh", "return the corners"),
]


def _companion_targets(boxes, labels, grid, num_classes, image_size):
    return companion.yolo.assign_targets([{"boxes": boxes, "labels": labels}], grid, num_classes, image_size)[0]


def _companion_decode(pred, num_boxes, image_size):
    n, s = pred.shape[:2]
    cells = pred[..., :5 * num_boxes].reshape(n, s, s, num_boxes, 5)[..., :4]
    return companion.yolo.cells_to_boxes(cells.movedim(3, 1), image_size).movedim(1, 3)


CHEATS = [
    ("q2", _companion_targets),
    ("q3", lambda pred, target, num_boxes: companion.yolo.yolo_loss(pred, target, num_boxes)["loss"]),
    ("q4", _companion_decode),
]
