"""companion.metrics against the references: torchmetrics' mAP with pycocotools, Dice and IoU by hand."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.detection import MeanAveragePrecision

from companion import metrics


def scene(g: torch.Generator, num_classes: int = 3) -> tuple[dict, dict]:
    """One image: a few ground-truth boxes and noisy, partly wrong detections of them."""
    n = int(torch.randint(0, 6, (1,), generator=g))
    corner = torch.rand(n, 2, generator=g) * 80
    gt = torch.cat([corner, corner + 8 + torch.rand(n, 2, generator=g) * 30], dim=1)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    keep = torch.rand(n, generator=g) < 0.8  # some objects are missed
    det = gt[keep] + torch.randn(int(keep.sum()), 4, generator=g) * 3  # found, imprecisely
    det_labels = labels[keep].clone()
    flip = torch.rand(len(det_labels), generator=g) < 0.15  # some get the wrong class
    det_labels[flip] = torch.randint(0, num_classes, (int(flip.sum()),), generator=g)
    extra = int(torch.randint(0, 4, (1,), generator=g))  # false alarms
    corner = torch.rand(extra, 2, generator=g) * 80
    det = torch.cat([det, torch.cat([corner, corner + 10], dim=1)])
    det = torch.cat([det[:, :2], torch.maximum(det[:, 2:], det[:, :2] + 1)], dim=1)
    det_labels = torch.cat([det_labels, torch.randint(0, num_classes, (extra,), generator=g)])
    scores = torch.rand(len(det), generator=g)
    return ({"boxes": det, "scores": scores, "labels": det_labels}, {"boxes": gt, "labels": labels})


def reference(predictions, targets) -> dict:
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools")
    metric.warn_on_many_detections = False  # more than 100 is what one test is about
    metric.update(predictions, targets)
    return metric.compute()


@pytest.mark.parametrize("seed", range(6))
def test_map_equals_torchmetrics_with_pycocotools(seed):
    g = torch.Generator().manual_seed(seed)
    predictions, targets = zip(*(scene(g, num_classes=2 + seed % 3) for _ in range(8)))
    ours = metrics.mean_average_precision(list(predictions), list(targets))
    theirs = reference(list(predictions), list(targets))
    for key in ("map", "map_50"):
        torch.testing.assert_close(ours[key], theirs[key].float(), atol=1e-3, rtol=0)


def test_map_at_most_100_detections_per_image_and_classes_without_ground_truth_ignored():
    g = torch.Generator().manual_seed(7)
    gt = torch.tensor([[10.0, 10.0, 30.0, 30.0], [50.0, 50.0, 70.0, 70.0]])
    noise = torch.rand(150, 2, generator=g) * 60
    det = torch.cat([torch.cat([noise, noise + 15], dim=1), gt])  # the true boxes score lowest
    scores = torch.cat([torch.rand(150, generator=g) * 0.5 + 0.5, torch.tensor([0.1, 0.1])])
    labels = torch.zeros(152, dtype=torch.int64)
    labels[:10] = 5  # a class with no ground truth anywhere: ignored
    predictions = [{"boxes": det, "scores": scores, "labels": labels}]
    targets = [{"boxes": gt, "labels": torch.zeros(2, dtype=torch.int64)}]
    ours = metrics.mean_average_precision(predictions, targets)
    theirs = reference(predictions, targets)
    torch.testing.assert_close(ours["map"], theirs["map"].float(), atol=1e-3, rtol=0)
    assert float(ours["map"]) < 0.05, "the true boxes are past the 100th detection: they do not count"


def test_map_where_recalls_land_exactly_on_the_recall_points():
    """Ten objects, found one by one: recalls 0.1, 0.2, ... fall exactly on COCO's recall points,
    where float32 and float64 thresholds disagree; the result must still be torchmetrics' (defaults)."""
    gt = torch.tensor([[20.0 * i, 0.0, 20.0 * i + 10, 10.0] for i in range(10)])
    hits = gt[[0, 1, 2, 3, 5, 6, 8]]
    misses = torch.tensor([[300.0, 300.0, 310.0, 310.0], [400.0, 400.0, 410.0, 410.0]])
    det = torch.cat([hits[:3], misses[:1], hits[3:], misses[1:]])
    scores = torch.linspace(0.9, 0.1, len(det))  # a false alarm ranked fourth and last
    predictions = [{"boxes": det, "scores": scores, "labels": torch.zeros(len(det), dtype=torch.int64)}]
    targets = [{"boxes": gt, "labels": torch.zeros(10, dtype=torch.int64)}]
    ours, theirs = metrics.mean_average_precision(predictions, targets), reference(predictions, targets)
    for key in ("map", "map_50"):
        torch.testing.assert_close(ours[key], theirs[key].float(), atol=1e-6, rtol=0)


def test_map_of_perfect_and_of_empty_detections():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 35.0]])
    labels = torch.tensor([0, 1])
    perfect = [{"boxes": gt, "scores": torch.tensor([0.9, 0.8]), "labels": labels}]
    targets = [{"boxes": gt, "labels": labels}]
    assert float(metrics.mean_average_precision(perfect, targets)["map"]) == pytest.approx(1.0)
    nothing = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}]
    assert float(metrics.mean_average_precision(nothing, targets)["map_50"]) == 0.0


def test_map_bad_input_is_named():
    good = {"boxes": torch.zeros(1, 4), "scores": torch.ones(1), "labels": torch.zeros(1, dtype=torch.int64)}
    with pytest.raises(ValueError, match=r"predictions\[0\] must be a dict with keys"):
        metrics.mean_average_precision([{"boxes": torch.zeros(1, 4)}], [good])
    with pytest.raises(ValueError, match="1 images and targets 2"):
        metrics.mean_average_precision([good], [good, good])
    with pytest.raises(ValueError, match=r"\['scores'\] has 2 entries for 1 boxes"):
        metrics.mean_average_precision([dict(good, scores=torch.ones(2))], [good])


def _dice_by_hand(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.tensor([1.0 if x.sum() + y.sum() == 0 else float(2 * (x & y).sum() / (x.sum() + y.sum()))
                         for x, y in zip(a.bool(), b.bool())])


def _iou_by_hand(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.tensor([1.0 if (x | y).sum() == 0 else float((x & y).sum() / (x | y).sum())
                         for x, y in zip(a.bool(), b.bool())])


def test_dice_and_iou_equal_their_definitions():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(6, 9, 11, generator=g) > 0.5
    b = torch.rand(6, 9, 11, generator=g) > 0.6
    a[0], b[0] = False, False  # both empty: 1
    b[1] = a[1]  # identical: 1
    b[2] = ~a[2]  # disjoint: 0
    torch.testing.assert_close(metrics.dice_score(a, b), _dice_by_hand(a, b))
    torch.testing.assert_close(metrics.iou_score(a.int(), b.float()), _iou_by_hand(a, b))
    assert metrics.dice_score(a, b)[:3].tolist() == [1.0, 1.0, 0.0]
    dice, iou = metrics.dice_score(a, b), metrics.iou_score(a, b)
    torch.testing.assert_close(dice, 2 * iou / (1 + iou))  # the two are tied: D = 2J / (1 + J)


def test_masks_must_be_binary():
    logits = torch.randn(2, 4, 4)
    with pytest.raises(ValueError, match="must hold only 0 and 1"):
        metrics.dice_score(logits, logits > 0)
    with pytest.raises(ValueError, match=r"binary masks of shape \(N, H, W\)"):
        metrics.iou_score(torch.ones(4, 4), torch.ones(4, 4))
    with pytest.raises(ValueError, match="must have the same shape"):
        metrics.iou_score(torch.ones(1, 4, 4), torch.ones(1, 4, 5))
