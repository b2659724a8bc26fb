"""Metrics for detection and segmentation: COCO's mean average precision, Dice and IoU of masks.

**Mean average precision** follows the COCO evaluation (Lin et al., 2014, *Microsoft COCO*,
https://arxiv.org/abs/1405.0312; the reference code is pycocotools' ``COCOeval``), the number
detection papers report:

1. per image and class, the detections (at most 100 per image, best first) are matched greedily to
   ground-truth boxes: each detection takes the unmatched box it overlaps most, if their IoU
   reaches the threshold; a match is a true positive, anything else a false positive;
2. per class, all images' detections sorted by score give a precision-recall curve; precision is
   made non-increasing (each point takes the best precision at any higher recall) and read at the
   101 recalls 0, 0.01, ..., 1 (0 where the curve never reaches that recall): their mean is the
   class's average precision (AP);
3. mAP averages AP over the classes that have ground truth and over the IoU thresholds 0.50,
   0.55, ..., 0.95; ``map_50`` is the same at IoU 0.5 alone (PASCAL VOC's threshold).

**Dice** ``2|A∩B| / (|A| + |B|)`` and **IoU** ``|A∩B| / |A∪B|`` compare binary masks; both are 1
when both masks are empty.

Introduced in chapter 15 (mAP) and chapter 17 (Dice and IoU).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from companion.boxes import box_iou

# COCO's thresholds as torchmetrics builds them, with torch.linspace in float32: 0.07 becomes
# 0.0700000003, so a recall of exactly 7/100 does not reach that recall point (pycocotools' own
# COCOeval makes them in float64 and reads it there). The course's reference is torchmetrics.
IOU_THRESHOLDS = np.array(torch.linspace(0.5, 0.95, 10).tolist())
"""COCO's IoU thresholds: 0.50, 0.55, ..., 0.95 (as float32 values, as torchmetrics passes them)."""
RECALL_POINTS = np.array(torch.linspace(0.0, 1.0, 101).tolist())
"""COCO's 101 recall points at which precision is read (as float32 values, as torchmetrics passes them)."""
MAX_DETECTIONS = 100
"""Detections kept per image, the best-scoring first (COCO's ``maxDets=100``)."""


def _check_targets(items: object, name: str, keys: tuple[str, ...]) -> list[Mapping[str, Tensor]]:
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise TypeError(f"{name} must be a list with one dict per image, got {type(items).__name__}")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or any(k not in item for k in keys):
            raise ValueError(f"{name}[{i}] must be a dict with keys {keys}, got {item!r:.80}")
        boxes = item["boxes"]
        if not isinstance(boxes, Tensor) or not (boxes.numel() == 0 or (boxes.dim() == 2 and boxes.shape[1] == 4)):
            raise ValueError(f"{name}[{i}]['boxes'] must be a (N, 4) tensor of xyxy boxes")
        n = len(boxes) if boxes.numel() else 0
        for key in keys[1:]:
            if len(item[key]) != n:
                raise ValueError(f"{name}[{i}]['{key}'] has {len(item[key])} entries for {n} boxes")
    return list(items)


def _evaluate_image(det_boxes: Tensor, det_scores: Tensor, gt_boxes: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of one image's detections of one class, at every IoU threshold.

    Returns:
        scores (ndarray[D]): the kept detections' scores, best first;
        matched (ndarray[T, D] of bool): whether detection ``d`` is a true positive at threshold ``t``.
    """
    order = np.argsort(-det_scores.numpy(), kind="mergesort")[:MAX_DETECTIONS]  # as COCOeval
    det_boxes, scores = det_boxes[order], det_scores.numpy()[order]
    matched = np.zeros((len(IOU_THRESHOLDS), len(order)), dtype=bool)
    if len(order) == 0 or len(gt_boxes) == 0:
        return scores, matched
    iou = box_iou(det_boxes.double(), gt_boxes.double()).numpy()  # (D, G)
    for t, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(gt_boxes), dtype=bool)
        for d in range(len(order)):
            best, best_iou = -1, min(threshold, 1 - 1e-10)
            for g in range(len(gt_boxes)):
                if not taken[g] and iou[d, g] >= best_iou:  # the most-overlapping free box
                    best, best_iou = g, iou[d, g]
            if best >= 0:
                taken[best], matched[t, d] = True, True
    return scores, matched


def _average_precision(scores: np.ndarray, matched: np.ndarray, num_gt: int) -> np.ndarray:
    """AP at every IoU threshold of one class: ``matched`` (T, D), all images' detections together."""
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(matched[:, order], axis=1)  # (T, D)
    fp = np.cumsum(~matched[:, order], axis=1)  # (T, D)
    ap = np.zeros(len(IOU_THRESHOLDS))
    if len(scores) == 0:  # no detection of this class anywhere: precision 0 at every recall
        return ap
    for t in range(len(IOU_THRESHOLDS)):
        recall = tp[t] / num_gt
        precision = tp[t] / (tp[t] + fp[t] + np.spacing(1))  # as COCOeval
        precision = np.maximum.accumulate(precision[::-1])[::-1]  # non-increasing envelope
        at = np.searchsorted(recall, RECALL_POINTS, side="left")  # first point reaching each recall
        sampled = np.where(at < len(precision), precision[np.minimum(at, len(precision) - 1)], 0.0)
        ap[t] = sampled.mean()
    return ap


def mean_average_precision(predictions: Sequence[Mapping[str, Tensor]],
                           targets: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """COCO's box mAP, written out: equal to torchmetrics' ``MeanAveragePrecision(box_format="xyxy",
    iou_type="bbox")`` with the pycocotools backend.

    Args:
        predictions: one dict per image: ``boxes`` (Tensor[D, 4], xyxy), ``scores`` (Tensor[D]),
            ``labels`` (Tensor[D], int).
        targets: one dict per image, in the same order: ``boxes`` (Tensor[G, 4]), ``labels`` (Tensor[G]).

    Returns:
        ``{"map": mAP at IoU 0.50:0.95, "map_50": mAP at IoU 0.5}`` as 0-D tensors; ``-1`` when no
        class has ground truth. Classes without ground truth in any image are ignored.
    """
    predictions = _check_targets(predictions, "predictions", ("boxes", "scores", "labels"))
    targets = _check_targets(targets, "targets", ("boxes", "labels"))
    if len(predictions) != len(targets):
        raise ValueError(f"predictions has {len(predictions)} images and targets {len(targets)}: "
                         "one of each per image, in the same order")
    classes = sorted({int(c) for t in targets for c in t["labels"].reshape(-1).tolist()})
    per_class = []
    for c in classes:
        all_scores, all_matched, num_gt = [], [], 0
        for pred, target in zip(predictions, targets):
            gt = target["boxes"].reshape(-1, 4)[target["labels"].reshape(-1) == c].detach().cpu()
            mine = pred["labels"].reshape(-1) == c
            scores, matched = _evaluate_image(pred["boxes"].reshape(-1, 4)[mine].detach().cpu(),
                                              pred["scores"].reshape(-1)[mine].detach().cpu().double(), gt)
            all_scores.append(scores)
            all_matched.append(matched)
            num_gt += len(gt)
        per_class.append(_average_precision(np.concatenate(all_scores), np.concatenate(all_matched, axis=1), num_gt))
    if not per_class:
        return {"map": torch.tensor(-1.0), "map_50": torch.tensor(-1.0)}
    ap = np.stack(per_class)  # (classes, T)
    return {"map": torch.tensor(float(ap.mean()), dtype=torch.float32),
            "map_50": torch.tensor(float(ap[:, 0].mean()), dtype=torch.float32)}


def _binary_masks(pred: object, target: object) -> tuple[Tensor, Tensor]:
    for name, mask in (("pred", pred), ("target", target)):
        if not isinstance(mask, Tensor):
            raise TypeError(f"{name} must be a tensor of binary masks (N, H, W), got {type(mask).__name__}")
        if mask.dim() != 3:
            raise ValueError(f"{name} must be binary masks of shape (N, H, W), got shape {tuple(mask.shape)}")
        if mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"{name} must hold only 0 and 1 (or bool): threshold probabilities or "
                             "logits first, e.g. (logits > 0)")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    return pred.bool().flatten(1), target.bool().flatten(1)  # (N, H*W) each


def dice_score(pred: Tensor, target: Tensor) -> Tensor:
    """Dice coefficient ``2|A∩B| / (|A| + |B|)`` of each pair of binary masks.

    Args:
        pred, target (Tensor[N, H, W]): bool or 0/1 masks.

    Returns:
        Tensor[N] (float32): one score per pair; 1.0 where both masks are empty.
    """
    a, b = _binary_masks(pred, target)
    inter = (a & b).sum(1).float()
    total = (a.sum(1) + b.sum(1)).float()
    return torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))


def iou_score(pred: Tensor, target: Tensor) -> Tensor:
    """Intersection over union ``|A∩B| / |A∪B|`` (the Jaccard index) of each pair of binary masks.

    Args:
        pred, target (Tensor[N, H, W]): bool or 0/1 masks.

    Returns:
        Tensor[N] (float32): one score per pair; 1.0 where both masks are empty.
    """
    a, b = _binary_masks(pred, target)
    inter = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
