"""Exercise 17, question 1: predict, then verify, the receptive field of a dilated stack, ``predicted_field``.

The learner writes down, before computing anything, how many input pixels (along one axis) one
output unit of four stacked 3x3 convolutions with dilation rates 1, 2, 4 and 8 (stride 1, padded
to keep the size) depends on. The reference measures it: the nonzero extent of the gradient of
the centre unit with respect to the input (``companion.pool.gradient_map``), for the stack with
all-ones weights, which is 1 + 2 * (1 + 2 + 4 + 8) = 31. The usual wrong predictions are known
mistakes. Dilated convolutions: Yu and Koltun, 2016, https://arxiv.org/abs/1511.07122.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question
from companion.pool import gradient_map, nonzero_extent
from companion.segmentation import dilated_stack

OK_FORMAT = False
name = "q1"
points = 2

RATES = (1, 2, 4, 8)


def measured():
    stack = dilated_stack(1, RATES, relu=False).double()
    with torch.no_grad():
        for conv in stack:
            conv.weight.fill_(1.0)
            conv.bias.zero_()
    (top, bottom), _ = nonzero_extent(gradient_map(stack, torch.zeros(1, 41, 41, dtype=torch.float64)))
    return bottom - top + 1


def cases(draw):
    return [Case((), "four 3x3 convolutions with dilation rates 1, 2, 4, 8")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


QUESTION = Question(
    name="q1",
    function="predicted_field",
    points=points,
    reference=measured,
    oracle="the gradient of one output unit with respect to the input",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("9 is the field of four plain 3x3 convolutions (2L + 1): the dilation is forgotten. A 3x3 kernel "
                "with rate d spans 2d + 1 pixels, so each layer adds 2d, not 2.", value=lambda: 9),
        Mistake("17 is the field of the last layer alone (2 * 8 + 1). The layers below widen what each of its "
                "taps sees: add 2d for every layer.", value=lambda: 17),
        Mistake("34 adds up the spans of the four kernels (3 + 5 + 9 + 17), which counts the pixel where two "
                "layers meet once per layer: each layer adds its span minus one.", value=lambda: 34),
        Mistake("30 is the distance from the first to the last pixel; the field counts the pixels, one more.",
                value=lambda: 30),
    ),
    hints=(
        "Start with one layer: a 3x3 kernel with rate d reads pixels -d, 0 and +d, so it spans 2d + 1 pixels.",
        "Stacking a layer on a field of r pixels: each of its taps sees r pixels, and the taps are d apart.",
        "Return a Python int.",
    ),
)


@test_case(points=points)
def test_predicted_field(predicted_field):
    QUESTION.assert_passes(predicted_field)
