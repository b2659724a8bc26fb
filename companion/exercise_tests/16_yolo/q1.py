"""Exercise 16, question 1: predict, then verify, how many predictors the no-object term pushes
towards confidence 0, ``predicted_noobj``.

An 8 x 8 grid with B = 2 predictors per cell (128 predictors) and a scene whose 3 objects have
their centres in 3 different cells. In YOLO's loss (Redmon et al., 2016, equation 3) one
predictor per object is responsible for it; every other predictor, in the objects' cells too,
is in the no-object term. The reference counts them with ``companion.yolo.responsible`` on such
a scene (125); the usual wrong predictions are known mistakes.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion import yolo
from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2

S, B, C = 8, 2, 3
BOXES = torch.tensor([[2.0, 3.0, 20.0, 25.0], [30.0, 8.0, 50.0, 30.0], [10.0, 40.0, 40.0, 60.0]])


def measured():
    target = yolo.assign_targets([{"boxes": BOXES, "labels": torch.tensor([0, 1, 2])}], S, C, 64)
    pred = torch.rand(1, S, S, 5 * B + C, generator=torch.Generator().manual_seed(0))
    return int((1 - yolo.responsible(pred, target, B)).sum())


def cases(draw):
    return [Case((), "an 8 x 8 grid, B = 2, three objects in three different cells")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


QUESTION = Question(
    name="q1",
    function="predicted_noobj",
    points=points,
    reference=measured,
    oracle="companion.yolo.responsible on such a scene",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("122 leaves out the whole cells that hold an object; only the responsible predictor of such a "
                "cell is left out of the no-object term: the other predictor of that cell is pushed towards 0 "
                "too (1_noobj = 1 - 1_obj, predictor by predictor).", value=lambda: 122),
        Mistake("128 puts the responsible predictors in the no-object term as well: they are trained towards "
                "their IoU with the object by the object term, not towards 0.", value=lambda: 128),
        Mistake("61 counts cells, not predictors: each of the 64 cells has B = 2 predictors, and the no-object "
                "term is about each predictor's confidence.", value=lambda: 61),
        Mistake("3 is the number of responsible predictors, the ones the no-object term leaves out.",
                value=lambda: 3),
        Mistake("the answer is a count of predictors, a whole number between 0 and 128.",
                matches=lambda got, expected, args: _number(got) and (got != int(got) or not 0 <= got <= 128)),
    ),
    hints=(
        "How many predictors are there in all? S * S * B.",
        "Which predictors are responsible for an object? How many of them are there?",
        "The no-object indicator is 1 - (responsible), predictor by predictor, whatever the cell.",
    ),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_noobj(predicted_noobj):
    QUESTION.assert_passes(predicted_noobj)
