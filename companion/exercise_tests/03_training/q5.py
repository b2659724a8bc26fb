"""Exercise 3, question 5: predict, then measure, how a gradient changes when the weights before a batch norm grow.

The learner writes down one number before running anything: a convolution without bias feeds a
batch norm in training mode; if its weights are multiplied by 10, by what factor does the norm of
the loss's gradient with respect to those weights change? The output does not change (batch norm
undoes the scale), and the gradient shrinks by the same factor: 1/10. This scale invariance is why
batch norm tolerates large learning rates (a large step makes the weights larger, and so the next
steps smaller) and why weight standardisation can fix the scale altogether. The reference measures
the factor with autograd; the common wrong predictions are known mistakes.
Ioffe & Szegedy (2015), section 3.3, https://arxiv.org/abs/1502.03167.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q5"
points = 2
SCALE = 10.0


def gradient_norm(x, weight, readout):
    w = weight.clone().requires_grad_(True)
    y = F.batch_norm(F.conv2d(x, w), None, None, training=True)  # no affine: gamma = 1, beta = 0
    loss = (y * readout).sum()
    return torch.autograd.grad(loss, w)[0].norm().item()


def measured(x, weight, readout):
    """||dL/dW at 10 W|| / ||dL/dW at W||."""
    return gradient_norm(x, SCALE * weight, readout) / gradient_norm(x, weight, readout)


def cases(draw):
    x, weight = draw.normal(8, 3, 6, 6), draw.normal(4, 3, 3, 3)
    readout = draw.normal(8, 4, 4, 4)
    return [Case((x, weight, readout), "a 3x3 convolution (3 -> 4 channels, no bias) and batch norm, "
                                       "on 8 random images")]


def predict(function, *args):
    """How the learner's answer is called: it takes no arguments; the tensors are the grader's."""
    return function()


def near(value):
    return lambda got, expected, args: isinstance(got, (int, float)) and abs(got - value) <= 0.05 * abs(value)


QUESTION = Question(
    name="q5",
    function="predicted_factor",
    points=points,
    reference=measured,
    oracle="the factor measured with autograd",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("1 would mean the gradient does not change. The *output* does not (batch norm divides the "
                "scale out again), but the gradient does: y(10 W) = y(W) for every W, so a change dW at 10 W "
                "does what a change dW / 10 does at W.", matches=near(1.0)),
        Mistake("10 is the other way round: larger weights give a smaller gradient here, since batch norm "
                "divides by the standard deviation, which grew 10 times.", matches=near(10.0)),
        Mistake("0.01 is one factor of 10 too many: differentiate y(a W) = y(W) with respect to W; the chain "
                "rule brings one factor a, not a^2.", matches=near(0.01)),
        Mistake("100 grows, and by too much: the gradient shrinks, by one factor of 10.", matches=near(100.0)),
    ),
    hints=(
        "Batch norm subtracts the mean and divides by the standard deviation of each channel: what happens to "
        "its output when its input is multiplied by 10?",
        "If f(a w) = f(w) for every w and a > 0, differentiate both sides with respect to w.",
        "Return one Python number, new gradient norm / old gradient norm.",
    ),
    rtol=0.02,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_factor(predicted_factor):
    QUESTION.assert_passes(predicted_factor)
