"""Exercise 8, question 5: predict, then count, how a wide ResNet's parameters grow with its width.

The learner writes down one number before running anything: WRN-28-10 is WRN-28-1 with every block
10 times wider (Zagoruyko & Komodakis, *Wide Residual Networks*, BMVC 2016,
https://arxiv.org/abs/1605.07146, Table 1); how many times more parameters does it have? Almost all
parameters are 3x3 convolution weights between two widened layers, 9 (kc)^2 = k^2 * 9c^2, so the
ratio is close to k^2 = 100 (98.7: the stem and the first projection grow only as k, the classifier
and the batch norms as k). The reference counts both networks built by
``companion.models.wrn.wide_resnet``; a prediction within 5% passes, and the common wrong
predictions (k, k^3, 2k) are known mistakes.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question
from companion.models.wrn import wide_resnet

OK_FORMAT = False
name = "q5"
points = 2


def measured():
    """params(WRN-28-10) / params(WRN-28-1), for 10 classes and 3-channel images."""
    with torch.device("meta"):  # shapes only: nothing is allocated
        wide, thin = wide_resnet(28, 10), wide_resnet(28, 1)
    return sum(p.numel() for p in wide.parameters()) / sum(p.numel() for p in thin.parameters())


def cases(draw):
    return [Case((), "WRN-28-10 against WRN-28-1, 10 classes, 3 input channels")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


def near(value):
    return lambda got, expected, args: isinstance(got, (int, float)) and abs(got - value) <= 0.05 * abs(value)


QUESTION = Question(
    name="q5",
    function="predicted_ratio",
    points=points,
    reference=measured,
    oracle="the parameters of wide_resnet(28, 10) over those of wide_resnet(28, 1), counted",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("10 would be right if the parameters grew like the width. A 3x3 convolution from kc to kc "
                "channels has 9 (kc)^2 weights: both its input and its output are k times wider.",
                matches=near(10.0)),
        Mistake("1000 counts one factor of k too many: a convolution's weights grow with its input and its output "
                "channels, not with the depth or the image size.", matches=near(1000.0)),
        Mistake("20 adds the widening of the input and of the output; the weights multiply them: "
                "(k C_in) * (k C_out) = k^2 C_in C_out.", matches=near(20.0)),
        Mistake("1 would mean the width does not change the count: it does, 10 times wider blocks have about "
                "100 times the weights.", matches=near(1.0)),
    ),
    hints=(
        "Where are almost all the parameters of a WRN? Count the weights of one 3x3 convolution from c to c "
        "channels, then from 10c to 10c.",
        "The stem, the batch norms and the classifier are small next to the blocks' convolutions.",
        "Return one Python number; within 5% of the counted ratio passes.",
    ),
    rtol=0.05,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_ratio(predicted_ratio):
    QUESTION.assert_passes(predicted_ratio)
