"""Exercise 15, question 2: the IoU of every pair of two sets of boxes, ``box_iou``.

The reference is ``torchvision.ops.box_iou`` (``xyxy`` boxes, an ``(N, M)`` matrix). Each known
mistake is torchvision on changed inputs or a formula with one thing changed: the boxes read as
``xywh``, the intersection's width and height not clamped at 0 (two negative sides make a
positive area), the union that counts the intersection twice, the intersection over the first
box's area. The cases mix overlapping, nested, touching and disjoint boxes, float32 and float64.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torchvision.ops import box_convert, box_iou

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 3


def _area(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def formula(a, b, *, clamp=True, union="right"):
    """IoU written out, right with the defaults."""
    w = torch.minimum(a[:, None, 2], b[None, :, 2]) - torch.maximum(a[:, None, 0], b[None, :, 0])
    h = torch.minimum(a[:, None, 3], b[None, :, 3]) - torch.maximum(a[:, None, 1], b[None, :, 1])
    if clamp:
        w, h = w.clamp(min=0), h.clamp(min=0)
    inter = w * h
    if union == "sum":
        return inter / (_area(a)[:, None] + _area(b)[None, :])
    if union == "first":
        return inter / _area(a)[:, None].expand_as(inter)
    return inter / (_area(a)[:, None] + _area(b)[None, :] - inter)


def random_boxes(draw, n, dtype):
    xy = torch.rand(n, 2, generator=draw.generator, dtype=torch.float64) * 20
    wh = 1 + torch.rand(n, 2, generator=draw.generator, dtype=torch.float64) * 12
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


def cases(draw):
    found = []
    for n, m, dtype in [(5, 7, torch.float32), (1, 1, torch.float64), (8, 3, torch.float64), (12, 12, torch.float32)]:
        a, b = random_boxes(draw, n, dtype), random_boxes(draw, m, dtype)
        if n == 1:  # one box nested in another, and the same box twice
            b = torch.tensor([[a[0, 0] + 0.5, a[0, 1] + 0.5, a[0, 2] - 0.25, a[0, 3] - 0.25]], dtype=dtype)
        found.append(Case((a, b), f"boxes1 of shape ({n}, 4), boxes2 of shape ({m}, 4), {str(dtype)[6:]}"))
    a = torch.tensor([[0.0, 0.0, 4.0, 4.0], [10.0, 10.0, 12.0, 13.0]])
    b = torch.tensor([[4.0, 0.0, 8.0, 4.0], [20.0, 20.0, 25.0, 21.0], [0.0, 0.0, 4.0, 4.0]])
    found.append(Case((a, b), "touching, far-apart and identical boxes"))
    return found


def as_xywh(a, b):
    return box_iou(box_convert(a, "xywh", "xyxy"), box_convert(b, "xywh", "xyxy"))


QUESTION = Question(
    name="q2",
    function="box_iou",
    points=points,
    reference=box_iou,
    oracle="torchvision.ops.box_iou",
    cases=cases,
    mistakes=(
        Mistake("the boxes are read in the wrong format: they are xyxy, (x0, y0, x1, y1), two corners; the answer "
                "treats the last two numbers as a width and a height (xywh).", value=as_xywh),
        Mistake("boxes that do not overlap get a non-zero IoU: the intersection's width and height are negative "
                "for boxes apart along that axis, and two negatives multiply to a positive area. Clamp each at 0 "
                "before multiplying.", value=lambda a, b: formula(a, b, clamp=False)),
        Mistake("the union counts the intersection twice: it is area1 + area2 - intersection.",
                value=lambda a, b: formula(a, b, union="sum")),
        Mistake("the intersection is divided by the area of the first box only (that is how much of box 1 is "
                "covered); IoU divides by the union.", value=lambda a, b: formula(a, b, union="first")),
        Mistake("the result must be the (N, M) matrix of every pair, row i for boxes1[i], column j for boxes2[j], "
                "not a pairing of boxes1[i] with boxes2[i]. Broadcast (N, 1) against (1, M).",
                matches=lambda got, expected, args: isinstance(got, torch.Tensor) and got.shape != expected.shape),
    ),
    hints=(
        "The intersection of two xyxy boxes is the box from the larger of the two top-left corners to the smaller "
        "of the two bottom-right corners. What if that box is 'negative'?",
        "For every pair at once: index with [:, None] for boxes1 and [None, :] for boxes2, so that torch.maximum "
        "and torch.minimum broadcast to (N, M).",
        "Test on the example of question 1 and on two boxes far apart.",
    ),
    forbidden=Forbidden(modules=("companion.boxes", "companion.metrics", "torchvision.ops", "companion.scenes"),
                        names=("box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou",
                               "box_area", "masks_to_boxes"),
                        what="IoU"),
    rtol=1e-5,
    atol=1e-6,
)


@test_case(points=points)
def test_box_iou(box_iou):
    QUESTION.assert_passes(box_iou)
