"""Exercise 10, question 1: the cost of a depthwise-separable layer, ``separable_cost``.

The reference builds the layer with torch (a k x k depthwise ``nn.Conv2d`` with ``groups=C_in``,
then a 1x1 ``nn.Conv2d``, both with biases and "same" padding) and counts it with the companion's
counter: ``sum(p.numel())`` for the parameters, forward hooks for the multiply-adds
(``companion.count``, chapter 2). The learner must get both numbers from the formulas of chapter
10 alone. Each known mistake is the right formula with one term changed. Howard et al.,
*MobileNets* (2017), Section 3.1, https://arxiv.org/abs/1704.04861.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

from torch import nn
from otter.test_files import test_case

from companion.count import count_flops, count_parameters
from companion.grade import CONVOLUTION, Case, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2


def built_and_counted(c_in, c_out, kernel_size, height, width):
    """(parameters, multiply-adds) of the layer built with torch and counted by the companion."""
    layer = nn.Sequential(nn.Conv2d(c_in, c_in, kernel_size, padding=kernel_size // 2, groups=c_in),  # depthwise
                          nn.Conv2d(c_in, c_out, 1))  # pointwise
    return count_parameters(layer), count_flops(layer, (c_in, height, width))


def formula(c_in, c_out, kernel_size, height, width, *, biases=True, depthwise=True, pointwise=True, pixels=True):
    """The two counts written out, with the variants the known mistakes use."""
    taps = kernel_size * kernel_size
    dw_weights = taps * c_in if depthwise else taps * c_in * c_in  # one k x k filter per channel (or a full conv)
    pw_weights = c_in * c_out if pointwise else 0
    parameters = dw_weights + pw_weights + (c_in + (c_out if pointwise else 0)) * biases
    macs = (dw_weights + pw_weights) * (height * width if pixels else 1)  # each weight is used once per pixel
    return parameters, macs


def standard(c_in, c_out, kernel_size, height, width):
    """A standard k x k convolution from C_in to C_out channels instead."""
    return kernel_size * kernel_size * c_in * c_out + c_out, kernel_size * kernel_size * c_in * c_out * height * width


def variant(**changes):
    return lambda *args: formula(*args, **changes)


# (C_in, C_out, kernel size) of each case; the map's height and width are random.
SETTINGS = [(32, 64, 3), (3, 8, 3), (16, 16, 5), (64, 128, 3), (8, 24, 1), (24, 12, 7), (2, 5, 3), (128, 256, 3)]


def cases(draw):
    found = []
    for c_in, c_out, k in SETTINGS:
        height, width = draw.int(2, 9), draw.int(2, 9)
        found.append(Case((c_in, c_out, k, height, width),
                          f"c_in={c_in}, c_out={c_out}, kernel_size={k}, height={height}, width={width}"))
    return found


FORBIDDEN = CONVOLUTION.extended(
    modules=("companion.count",),
    names=("count_parameters", "count_flops", "layer_table", "parameters"),
    what="the count (with the formulas, without building the layers)",
)

QUESTION = Question(
    name="q1",
    function="separable_cost",
    points=points,
    reference=built_and_counted,
    oracle="the layer built with nn.Conv2d (groups=c_in, then 1x1) and counted by companion.count",
    cases=cases,
    mistakes=(
        Mistake("this is the cost of a standard k x k convolution from c_in to c_out channels: the depthwise "
                "separable layer replaces it by one k x k filter per input channel plus a 1x1 convolution.",
                value=standard),
        Mistake("the depthwise convolution is counted as a full convolution from c_in to c_in channels: with "
                "groups = c_in each filter sees one channel, so it has k * k weights, not k * k * c_in.",
                value=variant(depthwise=False)),
        Mistake("the 1x1 pointwise convolution is missing: after the depthwise filters, a 1x1 convolution mixes "
                "the channels, with c_in * c_out weights and c_out biases.", value=variant(pointwise=False)),
        Mistake("the biases are forgotten: each of the two convolutions has one bias per output channel "
                "(c_in for the depthwise one, c_out for the pointwise one).", value=variant(biases=False)),
        Mistake("the multiply-adds are counted for one pixel only: every weight is used once at each of the "
                "height * width output positions.", value=variant(pixels=False)),
    ),
    hints=(
        "Count the two convolutions separately, then add. For each, how many filters are there, and how many "
        "input channels does one filter see?",
        "A convolution's multiply-adds are its weights (biases excluded) times the number of output positions; "
        "with 'same' padding and stride 1 that is height * width.",
        "Return a tuple of two Python ints: (parameters, multiply_adds).",
    ),
    forbidden=FORBIDDEN,
)


@test_case(points=points)
def test_separable_cost(separable_cost):
    QUESTION.assert_passes(separable_cost)
