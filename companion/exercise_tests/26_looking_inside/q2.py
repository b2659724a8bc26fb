"""Exercise 26, question 2: predict, then verify, the Grad-CAM channel weights of a tiny head, ``predicted_weights``.

Two feature maps of 2 x 2, ``A1 = [[1, 4], [2, 0]]`` and ``A2 = [[2, 1], [0, 3]]``, and the score
``y = 2 max(A1) - 3 mean(A2) + 1``. The gradient of ``max(A1)`` is 1 at the maximum and 0 elsewhere,
that of ``mean(A2)`` is 1/4 everywhere, so Grad-CAM's weights, the gradients averaged over the four
positions, are ``alpha = (2 / 4, -3 / 4) = (0.5, -0.75)``. The reference computes them with autograd.
Selvaraju et al. (2017), eq. 1, https://arxiv.org/abs/1610.02391.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 2

MAPS = [[[1.0, 4.0], [2.0, 0.0]], [[2.0, 1.0], [0.0, 3.0]]]


def measured():
    maps = torch.tensor(MAPS, dtype=torch.float64, requires_grad=True)  # (2, 2, 2)
    score = 2 * maps[0].max() - 3 * maps[1].mean() + 1
    (grad,) = torch.autograd.grad(score, maps)
    return tuple(float(a) for a in grad.mean(dim=(1, 2)))


def cases(draw):
    return [Case((), "A1 = [[1, 4], [2, 0]], A2 = [[2, 1], [0, 3]], y = 2 max(A1) - 3 mean(A2) + 1")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


QUESTION = Question(
    name="q2",
    function="predicted_weights",
    points=points,
    reference=measured,
    oracle="torch.autograd.grad of the score, averaged over the positions",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("the gradients are summed over the positions: Grad-CAM *averages* them, alpha_k = "
                "(1 / hw) sum_ij dy / dA^k_ij, so divide by the 4 positions.", value=lambda: (2.0, -3.0)),
        Mistake("the gradient of max(A1) is 1 at the maximum and 0 at the other three positions: its average "
                "over the 4 positions is 1/4, so alpha_1 = 2 / 4.", value=lambda: (2.0, -0.75)),
        Mistake("the gradient of mean(A2) is already 1/4 at each position; averaging it over the positions "
                "gives 1/4 again, so alpha_2 = -3 / 4, not -3.", value=lambda: (0.5, -3.0)),
        Mistake("divided by the number of positions twice: the gradient of mean(A2) is -3/4 at each position, "
                "and its average is -3/4, not -3/16.", value=lambda: (0.5, -0.1875)),
        Mistake("the sign of alpha_2: the score goes *down* when A2 grows (-3 mean(A2)), so its weight is "
                "negative.", value=lambda: (0.5, 0.75)),
    ),
    hints=(
        "Write the gradient of y with respect to each of the 8 entries: a 2 x 2 grid per map.",
        "d max(A1) / dA1_ij is 1 where A1 is largest, 0 elsewhere; d mean(A2) / dA2_ij = 1/4.",
        "Average each grid over its 4 positions. Return a tuple of two floats (alpha_1, alpha_2).",
    ),
    rtol=1e-9,
    atol=1e-12,
)


@test_case(points=points)
def test_predicted_weights(predicted_weights):
    QUESTION.assert_passes(predicted_weights)
