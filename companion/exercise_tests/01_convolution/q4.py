"""Exercise 1, question 4: predict, then measure, the output size and the parameters of a depthwise layer.

The learner writes down two numbers before running anything: the output height of
``nn.Conv2d(24, 72, kernel_size=5, stride=2, padding=2, groups=24)`` on a ``(1, 24, 32, 32)`` input
(a depthwise convolution with a channel multiplier of 3, S14), and the layer's parameter count,
bias included. The reference measures both with torch; the common wrong predictions are known
mistakes (groups ignored, the bias forgotten, the stride ignored, the output size rounded up).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torch import nn

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 2
C_IN, C_OUT, KERNEL, STRIDE, PADDING, SIZE = 24, 72, 5, 2, 2, 32


def measured():
    """(output height, parameters) of the layer, measured with torch."""
    layer = nn.Conv2d(C_IN, C_OUT, KERNEL, stride=STRIDE, padding=PADDING, groups=C_IN)
    height = layer(torch.zeros(1, C_IN, SIZE, SIZE)).shape[2]
    return (int(height), sum(p.numel() for p in layer.parameters()))


def cases(draw):
    return [Case((), "nn.Conv2d(24, 72, 5, stride=2, padding=2, groups=24) on a (1, 24, 32, 32) input")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    answer = function()
    if isinstance(answer, (tuple, list)) and len(answer) == 2:
        return tuple(answer)
    raise TypeError("predicted_layer must return a pair (output height, parameters), two numbers")


def part(index, value):
    def matches(got, expected, args):
        return isinstance(got, (tuple, list)) and len(got) == 2 and got[index] == value
    return matches


QUESTION = Question(
    name="q4",
    function="predicted_layer",
    points=points,
    reference=measured,
    oracle="the output height and parameter count measured with nn.Conv2d",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("the groups are ignored in the parameter count: with groups=24 each of the 72 filters sees "
                "24 / 24 = 1 input channel, so it has 5 * 5 weights, not 24 * 5 * 5.",
                matches=part(1, C_OUT * C_IN * KERNEL * KERNEL + C_OUT)),
        Mistake("the bias is forgotten: nn.Conv2d has one bias per output channel (72) unless bias=False.",
                matches=part(1, C_OUT * KERNEL * KERNEL)),
        Mistake("the channel multiplier is forgotten: 72 outputs from 24 inputs means 3 filters per input "
                "channel, 72 filters in all, not 24.", matches=part(1, C_IN * KERNEL * KERNEL + C_IN)),
        Mistake("the stride is ignored in the output size: the window moves 2 pixels at a time, which about "
                "halves the height.", matches=part(0, SIZE)),
        Mistake("the output size is rounded up, or off by one: floor((32 + 2*2 - 5) / 2) + 1.",
                matches=lambda got, expected, args: (isinstance(got, (tuple, list)) and len(got) == 2
                                                     and abs(got[0] - expected[0]) == 1)),
    ),
    hints=(
        "Output height: floor((n + 2p - k) / s) + 1, with n = 32, p = 2, k = 5, s = 2.",
        "Parameters: with groups = g each filter spans C_in / g input channels; there are C_out filters and "
        "C_out biases.",
        "Return a pair of Python numbers: (height, parameters).",
    ),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_layer(predicted_layer):
    QUESTION.assert_passes(predicted_layer)
