"""Exercise 15, question 1: predict, then verify, the IoU of two boxes, ``predicted_iou``.

The learner writes down, before computing anything, the intersection over union of the boxes
``(0, 0, 4, 4)`` and ``(2, 2, 6, 6)`` (``xyxy``): a square and its copy moved by half its side in
both directions. The reference is ``torchvision.ops.box_iou`` on those two boxes (1/7); the
usual wrong predictions are known mistakes. The measure is the Jaccard index used by PASCAL VOC
(Everingham et al., 2010) and COCO (Lin et al., 2014).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torchvision.ops import box_iou

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2

A = (0.0, 0.0, 4.0, 4.0)
B = (2.0, 2.0, 6.0, 6.0)


def measured():
    return float(box_iou(torch.tensor([A]), torch.tensor([B]))[0, 0])


def cases(draw):
    return [Case((), "the boxes (0, 0, 4, 4) and (2, 2, 6, 6), xyxy")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


QUESTION = Question(
    name="q1",
    function="predicted_iou",
    points=points,
    reference=measured,
    oracle="torchvision.ops.box_iou on the two boxes",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("0.5 is the overlap along one axis: the boxes share half their width *and* half their height, "
                "so the intersection is a quarter of a box, 2 x 2 = 4 pixels of 16.", value=lambda: 0.5),
        Mistake("0.25 is the intersection over the area of one box; IoU divides by the union, the area both "
                "boxes cover together, which is larger: 16 + 16 - 4.", value=lambda: 0.25),
        Mistake("0.125 divides by the sum of the two areas, 32, which counts the shared 4 pixels twice: the "
                "union is 16 + 16 - 4 = 28.", value=lambda: 0.125),
        Mistake("the IoU of two boxes is between 0 and 1 (1 only for identical boxes).",
                matches=lambda got, expected, args: _number(got) and not 0 <= got <= 1),
    ),
    hints=(
        "Draw the two squares on squared paper. Which pixels do both cover?",
        "The union is the area of one box plus the area of the other, minus what was counted twice.",
        "Return one Python number (a fraction is fine, e.g. 3 / 11).",
    ),
    rtol=1e-3,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_iou(predicted_iou):
    QUESTION.assert_passes(predicted_iou)
