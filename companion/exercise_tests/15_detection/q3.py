"""Exercise 15, question 3: find the bug in a colleague's NMS, ``batched_nms``.

The colleague's non-maximum suppression lets boxes of every class suppress each other; detection
needs it per class (a bag in front of a T-shirt is two objects). The reference is
``torchvision.ops.batched_nms``: the indices kept, by decreasing score. The known mistakes are the
colleague's class-agnostic NMS (``torchvision.ops.nms``), the kept indices grouped by class
instead of sorted by score, the boxes visited in their input order instead of by score, and
boxes suppressed at an IoU *below* the threshold. The cases draw clusters of overlapping boxes of
three classes, where the classes overlap each other. NMS: Neubeck and Van Gool, 2006.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torchvision.ops import batched_nms, box_iou, nms

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 3


def greedy(boxes, scores, labels, threshold, *, by_score=True, suppress_below=False):
    """Per-class greedy NMS written out, right with the defaults, results by decreasing score."""
    order = torch.argsort(scores, descending=True) if by_score else torch.arange(len(scores))
    iou = box_iou(boxes, boxes)
    removed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if removed[i]:
            continue
        keep.append(i)
        close = iou[i] < threshold if suppress_below else iou[i] > threshold
        removed |= close & (labels == labels[i])
        removed[i] = True
    keep = torch.tensor(keep, dtype=torch.int64)
    return keep[torch.argsort(scores[keep], descending=True)]


def grouped_by_class(boxes, scores, labels, threshold):
    kept = batched_nms(boxes, scores, labels, threshold)
    groups = [kept[labels[kept] == c] for c in torch.unique(labels)]
    if len(groups) < 2:
        return None
    grouped = torch.cat(groups)
    return None if torch.equal(grouped, kept) else grouped


def cases(draw):
    found = []
    for n, threshold in [(12, 0.5), (20, 0.3), (30, 0.5), (8, 0.7), (25, 0.45)]:
        centres = torch.rand(4, 2, generator=draw.generator, dtype=torch.float64) * 40  # clusters
        pick = torch.randint(0, 4, (n,), generator=draw.generator)
        centre = centres[pick] + torch.randn(n, 2, generator=draw.generator, dtype=torch.float64) * 2
        half = 4 + torch.rand(n, 2, generator=draw.generator, dtype=torch.float64) * 4
        boxes = torch.cat([centre - half, centre + half], dim=1).float()
        scores = torch.rand(n, generator=draw.generator).float()
        labels = torch.randint(0, 3, (n,), generator=draw.generator)
        found.append(Case((boxes, scores, labels, threshold),
                          f"{n} boxes in 4 clusters, 3 classes, iou_threshold={threshold}"))
    return found


QUESTION = Question(
    name="q3",
    function="batched_nms",
    points=points,
    reference=batched_nms,
    oracle="torchvision.ops.batched_nms",
    cases=cases,
    mistakes=(
        Mistake("this is still the colleague's bug: the NMS is class-agnostic, so a box suppresses overlapping "
                "boxes of other classes too. Only boxes with the same label may suppress each other.",
                value=lambda b, s, c, t: nms(b, s, t)),
        Mistake("the kept indices are grouped by class; return them all sorted by decreasing score (the order "
                "in which a detector reports them).", value=grouped_by_class),
        Mistake("the boxes are visited in their input order; greedy NMS visits them by decreasing score, so that "
                "the best box of each cluster is the one kept.", value=lambda b, s, c, t: greedy(b, s, c, t,
                                                                                                by_score=False)),
        Mistake("the test is the wrong way round: a box is removed when its IoU with a kept box is *above* the "
                "threshold (it is a duplicate), and stays when the overlap is small.",
                value=lambda b, s, c, t: greedy(b, s, c, t, suppress_below=True)),
    ),
    hints=(
        "Run the colleague's function on two identical boxes with different labels: how many come back? How many "
        "should?",
        "One way: run the colleague's NMS on the boxes of each class separately, then merge the results. Another: "
        "in the loop, suppress only boxes whose label equals the kept box's label.",
        "Return a LongTensor of indices into the input, sorted by decreasing score.",
    ),
    forbidden=Forbidden(ops=("torchvision.nms",),
                        modules=("companion.boxes", "companion.metrics", "companion.detection", "torchvision.ops"),
                        names=("nms", "batched_nms", "box_iou", "_batched_nms_coordinate_trick",
                               "_batched_nms_vanilla"),
                        what="non-maximum suppression and IoU"),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_batched_nms(batched_nms):
    QUESTION.assert_passes(batched_nms)
