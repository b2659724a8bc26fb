"""Exercise 11, question 5: predict, then count, the parameters of a SAGAN layer, ``predicted_parameters``.

The learner writes down one number before running anything: the parameters of the chapter's
``SelfAttention2d(64)``: 1x1 convolutions with bias for the queries and keys (64 -> 8) and the
values (64 -> 64), and the scalar gamma: 2 (64 * 8 + 8) + (64 * 64 + 64) + 1 = 5,201, whatever the
size of the feature map (SAGAN, Zhang et al., ICML 2019, https://arxiv.org/abs/1805.08318,
section 3, in the chapter's form without the paper's last 1x1 convolution). The reference counts
the layer's parameters; the common wrong predictions are known mistakes.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question
from companion.models.attention import SelfAttention2d

OK_FORMAT = False
name = "q5"
points = 2
C = 64
S = C // 8


def counted(channels):
    with torch.device("meta"):
        return sum(p.numel() for p in SelfAttention2d(channels).parameters())


def cases(draw):
    return [Case((C,), f"SelfAttention2d({C})")]


def predict(function, *args):
    """How the learner's answer is called: it takes no arguments."""
    return function()


def equals(value):
    return lambda got, expected, args: isinstance(got, (int, float)) and got == value


RIGHT = 2 * (C * S + S) + (C * C + C) + 1  # 5,201

QUESTION = Question(
    name="q5",
    function="predicted_parameters",
    points=points,
    reference=counted,
    oracle="sum(p.numel() for p in SelfAttention2d(64).parameters())",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("gamma is forgotten: the learned scale of the attention output is one more parameter.",
                matches=equals(RIGHT - 1)),
        Mistake("the biases are forgotten: each 1x1 convolution has one bias per output channel "
                f"({S} + {S} + {C}).", matches=equals(RIGHT - 2 * S - C)),
        Mistake("the biases and gamma are forgotten: a 1x1 convolution has a bias per output channel, and gamma "
                "is a parameter too.", matches=equals(RIGHT - 2 * S - C - 1)),
        Mistake("the queries and keys are counted with C channels: they have C / 8 (the reduction 8 makes the "
                "(HW x HW) scores cheap); only the values keep C.", matches=equals(3 * (C * C + C) + 1)),
        Mistake("the count grows with the feature map: a 1x1 convolution's weights do not depend on H x W; the "
                "attention map grows with (H W)^2, but it is computed from the input, not learned.",
                matches=lambda got, expected, args: isinstance(got, (int, float)) and got > 100_000),
    ),
    hints=(
        "List the layer's parameters: three 1x1 convolutions (how many inputs and outputs each?) and gamma.",
        "A 1x1 convolution from C_in to C_out channels has C_in * C_out weights and C_out biases.",
        "Return one Python int.",
    ),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_parameters(predicted_parameters):
    QUESTION.assert_passes(predicted_parameters)
