"""Exercise 16, question 3: YOLO's loss, ``yolo_loss``.

The reference is ``companion.yolo.yolo_loss(pred, target, num_boxes)["loss"]``, equation 3 of
Redmon et al. (2016): ``lambda_coord = 5`` times the squared errors of ``x, y, sqrt(w), sqrt(h)``
of the responsible predictors (the predictor of an object's cell whose box has the highest IoU
with it), plus the squared error of their confidences against that IoU, plus ``lambda_noobj =
0.5`` times the squared confidences of every other predictor, plus the squared errors of the
class probabilities of the cells with an object, divided by the number of images. Each known
mistake is the loss written out with one thing changed: the no-object term on every predictor
(responsible ones included), or only in cells without an object; confidence targets of 1 instead
of the IoU; the class term on every cell; no division by the number of images; the two weights
swapped. The cases are random outputs (float64) on targets of random boxes.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion import yolo
from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 4


def reference(pred, target, num_boxes):
    return yolo.yolo_loss(pred, target, num_boxes)["loss"]


def written_out(pred, target, num_boxes, *, noobj="others", rescore=True, classes="objects", per_image=True,
                coord=5.0, no_object=0.5):
    """The loss written out, right with the defaults."""
    n, s = pred.shape[:2]
    boxes = pred[..., :5 * num_boxes].reshape(n, s, s, num_boxes, 5)
    has = target[..., 4]  # (N, S, S)
    mask = yolo.responsible(pred, target, num_boxes)  # (N, S, S, B)
    iou = yolo.paired_iou(yolo.cells_to_boxes(boxes[..., :4].movedim(3, 1), 1),
                          yolo.cells_to_boxes(target[..., None, :4].movedim(3, 1), 1)).movedim(1, 3)
    truth = target[..., None, :4]
    box = (mask * ((boxes[..., :4] - truth) ** 2).sum(-1)).sum()
    goal = iou if rescore else torch.ones_like(iou)
    obj = (mask * (boxes[..., 4] - goal) ** 2).sum()
    away = {"others": 1 - mask, "all": torch.ones_like(mask), "empty": (1 - has)[..., None].expand_as(mask)}[noobj]
    noobj_term = (away * boxes[..., 4] ** 2).sum()
    where = has if classes == "objects" else torch.ones_like(has)
    cls = (where * ((pred[..., 5 * num_boxes:] - target[..., 5:]) ** 2).sum(-1)).sum()
    total = coord * box + obj + no_object * noobj_term + cls
    return total / n if per_image else total


def variant(**changes):
    def value(pred, target, num_boxes):
        out, right = written_out(pred, target, num_boxes, **changes), written_out(pred, target, num_boxes)
        return None if torch.allclose(out, right) else out
    return value


def cases(draw):
    found = []
    for n, s, b, c in [(2, 4, 2, 3), (3, 7, 2, 5), (1, 5, 3, 2), (4, 3, 1, 4)]:
        pred = 0.05 + 0.9 * torch.rand(n, s, s, 5 * b + c, generator=draw.generator, dtype=torch.float64)
        targets = []
        for _ in range(n):
            k = draw.int(1, 4)
            xy = torch.rand(k, 2, generator=draw.generator) * 40
            wh = 6 + torch.rand(k, 2, generator=draw.generator) * 20
            targets.append({"boxes": torch.cat([xy, xy + wh], 1),
                            "labels": torch.randint(0, c, (k,), generator=draw.generator)})
        target = yolo.assign_targets(targets, s, c, 64).double()
        found.append(Case((pred, target, b), f"pred ({n}, {s}, {s}, {5 * b + c}), num_boxes={b}, "
                                             f"{int(target[..., 4].sum())} objects"))
    return found


QUESTION = Question(
    name="q3",
    function="yolo_loss",
    points=points,
    reference=reference,
    oracle="companion.yolo.yolo_loss",
    cases=cases,
    mistakes=(
        Mistake("the no-object term also covers the responsible predictors: it must skip exactly them "
                "(1_noobj = 1 - 1_obj, predictor by predictor), since their confidence is trained towards the IoU.",
                value=variant(noobj="all")),
        Mistake("the no-object term covers only the cells without an object; the other predictors of a cell with "
                "an object (those not responsible for it) are pushed towards 0 too.", value=variant(noobj="empty")),
        Mistake("the confidence target of a responsible predictor is 1; in YOLO it is the IoU of its predicted "
                "box with the object.", value=variant(rescore=False)),
        Mistake("the class term is summed over every cell; only the cells that hold an object have class "
                "targets (1_obj for the cell).", value=variant(classes="all")),
        Mistake("the loss is summed over the images but not divided by their number N.",
                value=variant(per_image=False)),
        Mistake("the two weights are swapped: lambda_coord = 5 multiplies the box terms, lambda_noobj = 0.5 the "
                "no-object confidences.", value=variant(coord=0.5, no_object=5.0)),
    ),
    hints=(
        "Split pred into boxes (N, S, S, B, 5) and classes (N, S, S, C) with reshape.",
        "The responsible predictor of a cell is the argmax over B of the IoU of its box with the target box; "
        "both boxes in the same units (e.g. a unit image: centre ((j + x) / S, (i + y) / S), size sqrt(w)**2).",
        "Build a mask (N, S, S, B) that is 1 for responsible predictors; every term is a masked sum of squares.",
    ),
    forbidden=Forbidden(modules=("companion.yolo",), names=("yolo_loss", "responsible", "paired_iou"),
                        what="the YOLO loss"),
    rtol=1e-6,
    atol=1e-8,
)


@test_case(points=points)
def test_yolo_loss(yolo_loss):
    QUESTION.assert_passes(yolo_loss)
