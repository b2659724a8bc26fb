"""Exercise 6, question 5: predict, then count, the parameters of an Inception-ResNet-A block.

The learner writes down one number before running anything: the parameters of Inception-ResNet-v2's
35x35 residual block with 320 channels (Szegedy, Ioffe, Vanhoucke & Alemi, *Inception-v4,
Inception-ResNet and the Impact of Residual Connections on Learning*, AAAI 2017,
https://arxiv.org/abs/1602.07261, Figure 16): three branches of conv -> batch norm -> ReLU units
(1x1 to 32; 1x1 to 32, 3x3 to 32; 1x1 to 32, 3x3 to 48, 3x3 to 64), concatenated, and a linear 1x1
convolution with a bias back to 320 channels. The reference counts the parameters of
``companion.models.inception.InceptionResNetA(320)``; the common wrong counts are known mistakes.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

from otter.test_files import test_case

from companion.grade import Case, Mistake, Question
from companion.models.inception import InceptionResNetA

OK_FORMAT = False
name = "q5"
points = 2
C = 320
# (C_in, C_out, k) of the conv -> BN -> ReLU units, in branch order
UNITS = [(C, 32, 1), (C, 32, 1), (32, 32, 3), (C, 32, 1), (32, 48, 3), (48, 64, 3)]


def measured():
    """The parameters of the block, counted by the companion's module."""
    return sum(p.numel() for p in InceptionResNetA(C).parameters())


def by_hand(*, bn=2, conv_bias=0, projection_in=128, projection_bias=1, projection=True):
    """The count written out, right with the defaults, or with one thing changed."""
    units = sum(ci * co * k * k + (bn + conv_bias) * co for ci, co, k in UNITS)
    return units + (projection_in * C + projection_bias * C if projection else 0)


def cases(draw):
    return [Case((), "InceptionResNetA(320): 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3, then a linear 1x1 to 320")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


def equals(value):
    return lambda got, expected, args: isinstance(got, (int, float)) and got == value


QUESTION = Question(
    name="q5",
    function="predicted_parameters",
    points=points,
    reference=measured,
    oracle="sum(p.numel() for p in InceptionResNetA(320).parameters())",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("the batch norms are forgotten: each of the six conv -> BN -> ReLU units has a batch norm with "
                "2 parameters (gamma and beta) per output channel.", matches=equals(by_hand(bn=0))),
        Mistake("the batch norms' running mean and variance are counted: they are buffers, not parameters; a "
                "batch norm has 2 parameters per channel.", matches=equals(by_hand(bn=4))),
        Mistake("the convolutions of the units are given a bias: they have none (the batch norm after each has its "
                "own shift); only the linear 1x1 projection, which has no batch norm, has a bias.",
                matches=equals(by_hand(conv_bias=1))),
        Mistake("the projection's bias is forgotten: the linear 1x1 convolution back to 320 channels has no batch "
                "norm after it, so it keeps its bias, 320 more parameters.",
                matches=equals(by_hand(projection_bias=0))),
        Mistake("the projection reads 320 channels: it reads the concatenation of the branches, 32 + 32 + 64 = "
                "128 channels, and maps them back to 320.", matches=equals(by_hand(projection_in=C))),
        Mistake("the linear 1x1 projection is missing: the concatenated 128 channels must be mapped back to the "
                "input's 320 before they can be added to it.", matches=equals(by_hand(projection=False))),
    ),
    hints=(
        "List the seven convolutions with their input and output channels and kernel sizes; the concatenation "
        "has no parameters, nor has the addition.",
        "A unit conv -> BN has C_in * C_out * k * k weights and 2 * C_out batch-norm parameters; the projection "
        "has no batch norm but a bias.",
        "Return one Python int.",
    ),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_parameters(predicted_parameters):
    QUESTION.assert_passes(predicted_parameters)
