"""Exercise 2, question 1: predict, then measure, the receptive field of a stack with pooling and dilation.

The learner writes down one number before running anything: the receptive field (in pixels, along
one axis) of one output of a stack of 3x3 convolutions, 2x2 poolings and a dilated convolution. The
reference measures it with autograd, as chapter 2 does: with all-ones weights and average
pooling (the same geometry as max pooling), the gradient of one output is non-zero exactly on the
pixels it sees. The common wrong predictions are known mistakes (the jump forgotten, the dilation
forgotten, the jump updated too early, off by one).
Araujo, Norris & Sim (2019), https://distill.pub/2019/computing-receptive-fields/.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2

#: The stack of the question, first layer first: (kind, kernel, stride, dilation).
STACK = (("conv", 3, 1, 1), ("conv", 3, 1, 1), ("pool", 2, 2, 1), ("conv", 3, 1, 1), ("conv", 3, 1, 2),
         ("pool", 2, 2, 1), ("conv", 3, 1, 1))


def measured():
    """The side of the square of input pixels one central output depends on, found by autograd."""
    x = torch.zeros(1, 1, 96, 96, dtype=torch.float64, requires_grad=True)
    y = x
    for kind, k, s, d in STACK:
        if kind == "pool":
            y = F.avg_pool2d(y, k, s)
        else:
            y = F.conv2d(y, torch.ones(1, 1, k, k, dtype=torch.float64), padding=d * (k - 1) // 2, dilation=d)
    centre = y.shape[-1] // 2
    (grad,) = torch.autograd.grad(y[0, 0, centre, centre], x)
    rows = grad[0, 0].abs().sum(dim=1).nonzero().flatten()  # rows of input pixels that count
    return int(rows.max() - rows.min()) + 1


def recurrence(*, jump=True, dilation=True, early=False):
    """The recurrence r += (k_eff - 1) * j, j *= s; right with the defaults, or with one thing changed."""
    field, j = 1, 1
    for kind, k, s, d in STACK:
        span = (d if dilation else 1) * (k - 1) + 1
        if early:
            j *= s
        field += (span - 1) * (j if jump else 1)
        if not early:
            j *= s
    return field


def cases(draw):
    return [Case((), "3x3, 3x3, 2x2 pool, 3x3, 3x3 with dilation 2, 2x2 pool, 3x3")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


QUESTION = Question(
    name="q1",
    function="predicted_field",
    points=points,
    reference=measured,
    oracle="the receptive field measured with autograd",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("the jump is forgotten: after a 2x2 pooling, neighbouring units are 2 pixels apart, after two "
                "poolings 4, so each later layer adds (k_eff - 1) * jump pixels, not k_eff - 1.",
                value=lambda: recurrence(jump=False)),
        Mistake("the dilation is forgotten: a 3x3 kernel with dilation 2 spans 2 * (3 - 1) + 1 = 5 units of the "
                "layer below.", value=lambda: recurrence(dilation=False)),
        Mistake("the jump is updated too early: a layer's own stride spaces the units *after* it; the growth it "
                "adds is measured with the jump of the layer below.", value=lambda: recurrence(early=True)),
        Mistake("off by one: one layer of kernel k sees k pixels, so start from r = 1 and add k_eff - 1 per "
                "layer.", matches=lambda got, expected, args: (isinstance(got, (int, float))
                                                                and abs(got - expected) == 1)),
    ),
    hints=(
        "Go from the input up and keep two numbers: the field r (start at 1) and the jump j, the distance in "
        "input pixels between neighbouring units of the current layer (start at 1).",
        "A layer with kernel k, dilation d and stride s adds (d * (k - 1)) * j to r, then multiplies j by s.",
        "Return one Python int.",
    ),
    forbidden=Forbidden(modules=("companion.pool", "companion.count"), what="the prediction (by hand)"),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_field(predicted_field):
    QUESTION.assert_passes(predicted_field)
