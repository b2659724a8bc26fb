"""Boxes for object detection: formats, areas, IoU, non-maximum suppression, anchors, box coding.

The same results as ``torchvision.ops`` (``box_convert``, ``box_area``, ``box_iou``, ``nms``,
``batched_nms``) and as torchvision's detection internals (``BoxCoder`` and
``AnchorGenerator``), written out so that each step can be read:

* formats: ``xyxy`` (corners), ``xywh`` (top-left corner, width, height), ``cxcywh`` (centre,
  width, height);
* IoU, intersection over union: the area two boxes share over the area they cover;
* NMS (non-maximum suppression): keep the best-scoring box, drop the boxes that overlap it by
  more than a threshold, repeat (Neubeck and Van Gool, 2006); ``batched_nms`` does it per class;
* anchors: boxes of several sizes and aspect ratios centred on every cell of a feature map
  (Ren et al., 2015, *Faster R-CNN*, https://arxiv.org/abs/1506.01497);
* box coding: a box as offsets from an anchor, ``(dx, dy, dw, dh)`` (Girshick et al., 2014,
  *R-CNN*, https://arxiv.org/abs/1311.2524, appendix C).

Introduced in chapter 15, *Object detection I*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from companion._checks import check_tensor

FORMATS = ("xyxy", "xywh", "cxcywh")
BBOX_XFORM_CLIP = math.log(1000.0 / 16)
"""torchvision's cap on the decoded log-scale ``dw, dh``: no box grows more than 62.5 times."""


def _check_boxes(boxes: object, name: str = "boxes") -> Tensor:
    check_tensor(boxes, name)
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {tuple(boxes.shape)}")
    return boxes


def _upcast(t: Tensor) -> Tensor:
    """float16/bfloat16 -> float32 and small ints -> int32, so that areas do not overflow (as torchvision)."""
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes between the ``xyxy``, ``xywh`` and ``cxcywh`` formats.

    Args:
        boxes (Tensor[N, 4]): boxes in ``in_fmt``.
        in_fmt, out_fmt: one of ``"xyxy"``, ``"xywh"``, ``"cxcywh"``.

    Returns:
        Tensor[N, 4]: the same boxes in ``out_fmt``.
    """
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in FORMATS:
            raise ValueError(f"{name} must be one of {FORMATS}, got {fmt!r}")
    _check_boxes(boxes)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":  # (x, y, w, h) -> corners
        x1, y1, x2, y2 = a, b, a + c, b + d
    elif in_fmt == "cxcywh":  # (cx, cy, w, h) -> corners
        x1, y1, x2, y2 = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    else:
        x1, y1, x2, y2 = a, b, c, d
    if out_fmt == "xyxy":
        return torch.stack((x1, y1, x2, y2), dim=-1)
    if out_fmt == "xywh":
        return torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """Areas of ``xyxy`` boxes.

    Args:
        boxes (Tensor[N, 4]): ``(x1, y1, x2, y2)`` with ``x1 <= x2`` and ``y1 <= y2``.

    Returns:
        Tensor[N]: ``(x2 - x1) * (y2 - y1)``.
    """
    boxes = _upcast(_check_boxes(boxes))
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of every pair of ``xyxy`` boxes.

    Args:
        boxes1 (Tensor[N, 4]), boxes2 (Tensor[M, 4]): boxes as ``(x1, y1, x2, y2)``.

    Returns:
        Tensor[N, M]: ``IoU[i, j] = |b1_i ∩ b2_j| / |b1_i ∪ b2_j|``.
    """
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    area1, area2 = box_area(boxes1), box_area(boxes2)
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2)
    size = (bottom_right - top_left).clamp(min=0)  # (N, M, 2); no overlap -> 0
    inter = size[..., 0] * size[..., 1]  # (N, M)
    union = area1[:, None] + area2[None, :] - inter  # (N, M)
    return inter / union


def _check_scores(boxes: Tensor, scores: object, iou_threshold: object) -> None:
    _check_boxes(boxes)
    check_tensor(scores, "scores")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), one per box, got {tuple(scores.shape)}")
    if not isinstance(iou_threshold, (int, float)) or isinstance(iou_threshold, bool):
        raise TypeError(f"iou_threshold must be a number, got {type(iou_threshold).__name__}")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression: the boxes kept, by decreasing score.

    Repeatedly keeps the highest-scoring remaining box and discards every remaining box whose IoU
    with it is above ``iou_threshold``. Boxes of all classes compete: see :func:`batched_nms`.

    Args:
        boxes (Tensor[N, 4]): ``xyxy`` boxes.
        scores (Tensor[N]): one score per box.
        iou_threshold: boxes overlapping a kept box by more than this are discarded.

    Returns:
        Tensor[K] (int64): indices of the kept boxes, highest score first.
    """
    _check_scores(boxes, scores, iou_threshold)
    order = torch.argsort(scores, descending=True, stable=True)
    iou = box_iou(boxes, boxes)  # (N, N)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold  # every box overlapping the kept one too much
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression within each category: boxes of different ``idxs`` never suppress each other.

    Args:
        boxes (Tensor[N, 4]): ``xyxy`` boxes.
        scores (Tensor[N]): one score per box.
        idxs (Tensor[N]): the category (or image) of each box, integers.
        iou_threshold: as in :func:`nms`.

    Returns:
        Tensor[K] (int64): indices of the kept boxes, highest score first.
    """
    _check_scores(boxes, scores, iou_threshold)
    check_tensor(idxs, "idxs")
    if idxs.shape != scores.shape:
        raise ValueError(f"idxs must have shape ({boxes.shape[0]},), one category per box, got {tuple(idxs.shape)}")
    keep = [torch.nonzero(idxs == c).flatten()[nms(boxes[idxs == c], scores[idxs == c], iou_threshold)]
            for c in torch.unique(idxs)]
    kept = torch.cat(keep) if keep else torch.zeros(0, dtype=torch.int64, device=boxes.device)
    return kept[torch.argsort(scores[kept], descending=True, stable=True)]


def _check_weights(weights: Sequence[float]) -> tuple[float, float, float, float]:
    if len(weights) != 4:
        raise ValueError(f"weights must be 4 numbers (wx, wy, ww, wh), got {weights!r}")
    return tuple(float(w) for w in weights)  # type: ignore[return-value]


def _centres(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(cx, cy, w, h)`` of ``xyxy`` boxes, each Tensor[N]."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights, widths, heights


def encode_boxes(reference_boxes: Tensor, proposals: Tensor,
                 weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """The offsets that move each proposal (anchor) onto its reference (ground-truth) box.

    ``dx = wx (cx_ref - cx_prop) / w_prop``, ``dy = wy (cy_ref - cy_prop) / h_prop``,
    ``dw = ww log(w_ref / w_prop)``, ``dh = wh log(h_ref / h_prop)``: shifts in units of the
    proposal's size and log-scale changes, so that the targets do not depend on the box's size.

    Args:
        reference_boxes (Tensor[N, 4]): the boxes to reach, ``xyxy``.
        proposals (Tensor[N, 4]): the boxes to move, ``xyxy``, with positive width and height.
        weights: ``(wx, wy, ww, wh)``, which scale the targets (Faster R-CNN's box head uses
            ``(10, 10, 5, 5)``).

    Returns:
        Tensor[N, 4]: ``(dx, dy, dw, dh)``; equal to torchvision's ``BoxCoder(weights).encode_single``.
    """
    wx, wy, ww, wh = _check_weights(weights)
    _check_boxes(reference_boxes, "reference_boxes")
    _check_boxes(proposals, "proposals")
    if reference_boxes.shape != proposals.shape:
        raise ValueError(f"reference_boxes {tuple(reference_boxes.shape)} and proposals "
                         f"{tuple(proposals.shape)} must pair up one to one")
    px, py, pw, ph = _centres(proposals)
    gx, gy, gw, gh = _centres(reference_boxes)
    return torch.stack((wx * (gx - px) / pw, wy * (gy - py) / ph,
                        ww * torch.log(gw / pw), wh * torch.log(gh / ph)), dim=1)


def decode_boxes(deltas: Tensor, boxes: Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """Apply offsets ``(dx, dy, dw, dh)`` to boxes: the inverse of :func:`encode_boxes`.

    ``dw`` and ``dh`` are clamped at ``log(1000 / 16)`` before the exponential, as torchvision
    does, so that a wild prediction cannot overflow.

    Args:
        deltas (Tensor[N, 4]): offsets, e.g. a detector's box-regression output.
        boxes (Tensor[N, 4]): the anchors or proposals they refer to, ``xyxy``.
        weights: as in :func:`encode_boxes`.

    Returns:
        Tensor[N, 4]: the decoded ``xyxy`` boxes; equal to torchvision's
        ``BoxCoder(weights).decode_single``.
    """
    wx, wy, ww, wh = _check_weights(weights)
    _check_boxes(deltas, "deltas")
    _check_boxes(boxes)
    if deltas.shape != boxes.shape:
        raise ValueError(f"deltas {tuple(deltas.shape)} and boxes {tuple(boxes.shape)} must pair up one to one")
    cx, cy, w, h = _centres(boxes.to(deltas.dtype))
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    dw = (deltas[:, 2] / ww).clamp(max=BBOX_XFORM_CLIP)
    dh = (deltas[:, 3] / wh).clamp(max=BBOX_XFORM_CLIP)
    centre_x, centre_y = dx * w + cx, dy * h + cy
    half_w, half_h = 0.5 * torch.exp(dw) * w, 0.5 * torch.exp(dh) * h
    return torch.stack((centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h), dim=1)


def anchor_boxes(feature_size: tuple[int, int], image_size: tuple[int, int],
                 sizes: Sequence[float], aspect_ratios: Sequence[float]) -> Tensor:
    """Anchors of every size and aspect ratio on every cell of one feature map.

    A cell ``(i, j)`` of an ``H x W`` feature map over an image of ``height x width`` pixels sits
    at ``(j * stride_w, i * stride_h)`` with integer strides ``width // W`` and ``height // H``
    (the cell's top-left corner, as torchvision places it: not its centre). Around it go
    ``A = len(aspect_ratios) * len(sizes)`` boxes of area ``size**2`` and height/width ratio
    ``aspect_ratio``, their corners rounded to whole pixels.

    Args:
        feature_size: ``(H, W)`` of the feature map.
        image_size: ``(height, width)`` of the image.
        sizes: anchor sides in pixels (the square root of the area), e.g. ``(32, 64, 128)``.
        aspect_ratios: height / width of each anchor shape, e.g. ``(0.5, 1.0, 2.0)``.

    Returns:
        Tensor[H*W*A, 4]: ``xyxy`` anchors, cell by cell (rows, then columns), ``A`` per cell in
        the order ratio-major, size-minor; equal to torchvision's ``AnchorGenerator(sizes=(sizes,),
        aspect_ratios=(aspect_ratios,))`` on that one feature map.
    """
    for name, pair in (("feature_size", feature_size), ("image_size", image_size)):
        if len(pair) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in pair):
            raise ValueError(f"{name} must be two positive ints (height, width), got {pair!r}")
    if not sizes or not aspect_ratios or min(sizes) <= 0 or min(aspect_ratios) <= 0:
        raise ValueError(f"sizes and aspect_ratios must be non-empty and positive, got {sizes!r}, {aspect_ratios!r}")
    scales = torch.as_tensor(sizes, dtype=torch.float32)
    ratios = torch.as_tensor(aspect_ratios, dtype=torch.float32)
    h_ratios = torch.sqrt(ratios)  # height = size * sqrt(r), width = size / sqrt(r): area size**2
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)  # (A,), ratio-major
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)  # (A,)
    base = (torch.stack((-ws, -hs, ws, hs), dim=1) / 2).round()  # (A, 4), centred on (0, 0)
    (grid_h, grid_w), (height, width) = feature_size, image_size
    stride_h, stride_w = height // grid_h, width // grid_w
    shift_y, shift_x = torch.meshgrid(torch.arange(grid_h) * stride_h, torch.arange(grid_w) * stride_w,
                                      indexing="ij")  # (H, W) each
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=-1).reshape(-1, 1, 4)  # (H*W, 1, 4)
    return (shifts + base.view(1, -1, 4)).reshape(-1, 4)  # (H*W*A, 4)
