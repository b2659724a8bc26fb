"""Exercise 24, question 1: predict, then verify, ``abar_t`` of a constant schedule, ``predicted_abar``.

With ``beta_t = 0.1`` at every one of ``T = 20`` steps, timesteps counted from 0 as in the chapter
and diffusers, ``abar_9 = (1 - 0.1)**10 = 0.3487`` (steps 0 to 9: ten factors). The reference is
``companion.diffusion.alphas_cumprod``; the usual wrong predictions are known mistakes. Ho et al.
(2020), section 2, https://arxiv.org/abs/2006.11239.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import math

import torch
from otter.test_files import test_case

from companion.diffusion import alphas_cumprod
from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2


def measured():
    return float(alphas_cumprod(torch.full((20,), 0.1, dtype=torch.float64))[9])


def cases(draw):
    return [Case((), "beta = 0.1 at each of T = 20 steps, abar at t = 9")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


QUESTION = Question(
    name="q1",
    function="predicted_abar",
    points=points,
    reference=measured,
    oracle="companion.diffusion.alphas_cumprod of the schedule, at index 9",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("off by one: timesteps count from 0, so t = 9 is the tenth step and abar_9 = alpha_0 alpha_1 ... "
                "alpha_9 has ten factors of 0.9, not nine.", value=lambda: 0.9**9),
        Mistake("off by one: t = 9 is the tenth step (t counts from 0), so abar_9 has ten factors of 0.9, not "
                "eleven.", value=lambda: 0.9**11),
        Mistake("this is sqrt(abar_t), the factor that multiplies x0: abar_t itself is the variance of the signal "
                "left, the product of the alphas.", value=lambda: math.sqrt(0.9**10)),
        Mistake("this is 1 - abar_t, the variance of the noise: abar_t is the signal's share, the product of the "
                "alphas = 1 - beta.", value=lambda: 1 - 0.9**10),
        Mistake("exp(-sum of the betas) = exp(-1) is only an approximation, good when each beta is tiny; with "
                "beta = 0.1, multiply the ten factors (1 - 0.1) exactly.", value=lambda: math.exp(-1.0)),
        Mistake("1 - sum of the betas: the alphas multiply, they do not subtract; abar_t = (1 - beta)^(t + 1).",
                value=lambda: 0.0),
    ),
    hints=(
        "alpha_t = 1 - beta_t, and abar_t is the product alpha_0 alpha_1 ... alpha_t.",
        "Count the factors from t = 0 to t = 9 inclusive.",
        "Return one Python float.",
    ),
    rtol=0.01,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_abar(predicted_abar):
    QUESTION.assert_passes(predicted_abar)
