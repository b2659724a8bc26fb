"""companion.boxes against torchvision: formats, areas, IoU, NMS, anchors and box coding."""

from __future__ import annotations

import pytest
import torch
import torchvision.ops as tvops
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from companion import boxes as B


def random_boxes(n: int, generator: torch.Generator, size: float = 100.0, dtype=torch.float32) -> torch.Tensor:
    """``n`` xyxy boxes with positive width and height inside a ``size`` square."""
    corner = torch.rand(n, 2, generator=generator, dtype=torch.float64) * size
    extent = torch.rand(n, 2, generator=generator, dtype=torch.float64) * size / 2 + 1
    return torch.cat([corner, corner + extent], dim=1).to(dtype)


@pytest.mark.parametrize("seed", range(5))
def test_formats_area_and_iou_match_torchvision(seed):
    g = torch.Generator().manual_seed(seed)
    a, b = random_boxes(7, g), random_boxes(5, g)
    for fmt in B.FORMATS:
        for out in B.FORMATS:
            converted = tvops.box_convert(a, "xyxy", fmt)
            torch.testing.assert_close(B.box_convert(converted, fmt, out), tvops.box_convert(converted, fmt, out))
    torch.testing.assert_close(B.box_area(a), tvops.box_area(a))
    torch.testing.assert_close(B.box_iou(a, b), tvops.box_iou(a, b))
    torch.testing.assert_close(B.box_iou(a, a).diagonal(), torch.ones(7))  # a box overlaps itself fully
    far = a + 1000  # no overlap at all: IoU 0, not negative
    assert torch.equal(B.box_iou(a, far), torch.zeros(7, 7))
    ints = a.round().to(torch.int64)
    torch.testing.assert_close(B.box_area(ints), tvops.box_area(ints))
    torch.testing.assert_close(B.box_iou(ints, ints), tvops.box_iou(ints, ints))


def test_iou_gradients_match_torchvision():
    g = torch.Generator().manual_seed(0)
    a = random_boxes(4, g, dtype=torch.float64).requires_grad_()
    b = random_boxes(3, g, dtype=torch.float64)
    ours = torch.autograd.grad(B.box_iou(a, b).sum(), a)[0]
    theirs = torch.autograd.grad(tvops.box_iou(a, b).sum(), a)[0]
    torch.testing.assert_close(ours, theirs)
    torch.autograd.gradcheck(lambda x: B.box_iou(x, b), (a,))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_and_batched_nms_match_torchvision(seed, threshold):
    g = torch.Generator().manual_seed(seed)
    n = 60
    # Clusters of boxes around a few centres, so that many overlap.
    centres = random_boxes(6, g)[torch.randint(0, 6, (n,), generator=g)]
    boxes = centres + torch.randn(n, 4, generator=g) * 4
    boxes = torch.cat([boxes[:, :2], torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)], dim=1)
    scores = torch.rand(n, generator=g)
    classes = torch.randint(0, 3, (n,), generator=g)
    assert torch.equal(B.nms(boxes, scores, threshold), tvops.nms(boxes, scores, threshold))
    assert torch.equal(B.batched_nms(boxes, scores, classes, threshold),
                       tvops.batched_nms(boxes, scores, classes, threshold))


def test_nms_keeps_the_best_box_of_a_cluster_and_separate_boxes():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.8, 0.9, 0.1])
    assert B.nms(boxes, scores, 0.5).tolist() == [1, 2]
    # Same boxes in two classes: per-class NMS keeps both overlapping boxes.
    assert B.batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [1, 0, 2]
    assert B.nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []
    assert B.batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).tolist() == []


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (2.0, 3.0, 4.0, 0.5)])
def test_box_coding_matches_torchvision(weights):
    g = torch.Generator().manual_seed(1)
    reference, proposals = random_boxes(20, g), random_boxes(20, g)
    coder = BoxCoder(weights)
    deltas = B.encode_boxes(reference, proposals, weights)
    torch.testing.assert_close(deltas, coder.encode_single(reference, proposals))
    torch.testing.assert_close(B.decode_boxes(deltas, proposals, weights), reference, rtol=1e-4, atol=1e-3)
    wild = torch.randn(20, 4, generator=g) * 10  # large dw, dh: clamped as torchvision does
    torch.testing.assert_close(B.decode_boxes(wild, proposals, weights), coder.decode_single(wild, proposals))


def test_box_coding_gradients_match_torchvision():
    g = torch.Generator().manual_seed(2)
    proposals = random_boxes(6, g, dtype=torch.float64)
    deltas = (torch.randn(6, 4, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    ours = torch.autograd.grad(B.decode_boxes(deltas, proposals, (10.0, 10.0, 5.0, 5.0)).sum(), deltas)[0]
    theirs = torch.autograd.grad(coder.decode_single(deltas, proposals).sum(), deltas)[0]
    torch.testing.assert_close(ours, theirs)
    torch.autograd.gradcheck(lambda d: B.decode_boxes(d, proposals), (deltas,))


@pytest.mark.parametrize("feature_size,image_size,sizes,ratios", [
    ((4, 5), (64, 80), (32,), (1.0,)),
    ((7, 7), (224, 224), (32, 64, 128), (0.5, 1.0, 2.0)),
    ((5, 3), (100, 70), (20.0, 45.0), (0.7, 1.3)),  # strides 20 and 23 (integer division)
    ((3, 4), (50, 61), (16,), (0.25, 4.0)),
])
def test_anchors_match_torchvision(feature_size, image_size, sizes, ratios):
    generator = AnchorGenerator(sizes=(tuple(sizes),), aspect_ratios=(tuple(ratios),))
    images = ImageList(torch.zeros(1, 3, *image_size), [image_size])
    features = [torch.zeros(1, 8, *feature_size)]
    expected = generator(images, features)[0]
    ours = B.anchor_boxes(feature_size, image_size, sizes, ratios)
    assert ours.shape == (feature_size[0] * feature_size[1] * len(sizes) * len(ratios), 4)
    assert torch.equal(ours, expected), "values and order must match torchvision's"


def test_bad_input_is_named():
    box = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="in_fmt must be one of"):
        B.box_convert(box, "xyz", "xyxy")
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\), got \(4,\)"):
        B.box_area(box[0])
    with pytest.raises(TypeError, match="boxes1 must be a torch.Tensor"):
        B.box_iou([[0, 0, 1, 1]], box)
    with pytest.raises(ValueError, match=r"scores must have shape \(1,\)"):
        B.nms(box, torch.ones(2), 0.5)
    with pytest.raises(ValueError, match="idxs must have shape"):
        B.batched_nms(box, torch.ones(1), torch.ones(2), 0.5)
    with pytest.raises(ValueError, match="must pair up one to one"):
        B.encode_boxes(box, torch.cat([box, box]))
    with pytest.raises(ValueError, match="weights must be 4 numbers"):
        B.decode_boxes(box, box, (1.0, 1.0))
    with pytest.raises(ValueError, match="feature_size must be two positive ints"):
        B.anchor_boxes((0, 4), (32, 32), (8,), (1.0,))
    with pytest.raises(ValueError, match="sizes and aspect_ratios must be non-empty and positive"):
        B.anchor_boxes((2, 2), (32, 32), (), (1.0,))
