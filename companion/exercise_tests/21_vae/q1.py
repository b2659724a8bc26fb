"""Exercise 21, question 1: predict, then verify, the KL term of one encoder output, ``predicted_kl``.

The learner computes by hand ``KL(N(mu, diag(exp(logvar))) || N(0, I))`` for
``mu = (1, 0, -2, 0)`` and ``logvar = (0, log 4, 0, -log 4)``: ``1/2 sum_j (mu_j^2 + sigma_j^2 - 1 -
log sigma_j^2) = 1/2 (5 + 6.25 - 4 - 0) = 3.625`` nats. The reference is torch.distributions' KL;
the common wrong predictions are known mistakes. Kingma & Welling (2014), appendix B,
https://arxiv.org/abs/1312.6114.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import math

import torch
from otter.test_files import test_case
from torch.distributions import Normal, kl_divergence

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2
MU = (1.0, 0.0, -2.0, 0.0)
LOGVAR = (0.0, math.log(4.0), 0.0, -math.log(4.0))


def kl_of(mu, logvar):
    """torch.distributions' KL of N(mu, exp(logvar)) from N(0, 1), summed over the coordinates."""
    q = Normal(mu, torch.exp(0.5 * logvar))
    return float(kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum())


def cases(draw):
    mu, logvar = torch.tensor(MU, dtype=torch.float64), torch.tensor(LOGVAR, dtype=torch.float64)
    return [Case((mu, logvar), "mu = (1, 0, -2, 0), logvar = (0, log 4, 0, -log 4)")]


def predict(function, mu, logvar):
    """How the learner's answer is called: it takes no arguments; the encoder output is fixed."""
    return function()


def formula(mu, logvar, *, half=0.5, minus_one=True, reduce="sum", variance=None):
    """1/2 sum (mu^2 + s2 - 1 - log s2), or the variants of the mistakes."""
    s2 = torch.exp(logvar) if variance is None else variance(logvar)
    terms = mu**2 + s2 - (1.0 if minus_one else 0.0) - torch.log(s2)
    return float(half * (terms.sum() if reduce == "sum" else terms.mean()))


QUESTION = Question(
    name="q1",
    function="predicted_kl",
    points=points,
    reference=kl_of,
    oracle="torch.distributions.kl_divergence, summed over the 4 coordinates",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("the sign is flipped: a KL divergence is never negative; it is 1/2 sum (mu^2 + sigma^2 - 1 - "
                "log sigma^2), and each term is >= 0.", value=lambda m, lv: -kl_of(m, lv)),
        Mistake("this is the mean over the 4 coordinates: the KL of independent coordinates is their sum.",
                value=lambda m, lv: formula(m, lv, reduce="mean")),
        Mistake("the factor 1/2 is missing: KL = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2).",
                value=lambda m, lv: formula(m, lv, half=1.0)),
        Mistake("the -1 of each coordinate is missing: the KL of the prior itself (mu = 0, sigma = 1) must be 0.",
                value=lambda m, lv: formula(m, lv, minus_one=False)),
        Mistake("exp(logvar) was taken as the standard deviation: it is the variance, sigma^2 = exp(logvar) "
                "(so sigma^2 is 1, 4, 1 and 1/4 here).",
                value=lambda m, lv: formula(m, lv, variance=lambda v: torch.exp(2 * v))),
        Mistake("only the means count here: the variances add sigma^2 - 1 - log sigma^2 per coordinate too "
                "(0 where sigma^2 = 1, positive elsewhere).", value=lambda m, lv: float(0.5 * (m**2).sum())),
    ),
    hints=(
        "sigma_j^2 = exp(logvar_j): here 1, 4, 1 and 1/4. Which log sigma_j^2 cancel in the sum?",
        "Add up mu_j^2, then sigma_j^2, subtract D = 4 and the sum of the log-variances, and halve.",
        "Return one Python number.",
    ),
    rtol=0.01,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_kl(predicted_kl):
    QUESTION.assert_passes(predicted_kl)
