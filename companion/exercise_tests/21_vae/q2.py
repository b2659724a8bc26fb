"""Exercise 21, question 2: the KL term of a Gaussian encoder from its formula, ``kl_term``.

``KL(N(mu, diag(exp(logvar))) || N(0, I)) = -1/2 sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j))`` for each
row of ``(N, D)`` inputs, one value per image. The reference is torch.distributions' KL summed over the
latent dimensions. Each known mistake is the formula with one thing changed (the sign, the mean over the
latent dimensions, one number for the batch, logvar read as a standard deviation, ...). Kingma & Welling
(2014), appendix B, https://arxiv.org/abs/1312.6114.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from torch.distributions import Normal, kl_divergence

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 3


def reference(mu, logvar):
    q = Normal(mu, torch.exp(0.5 * logvar))
    return kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(dim=1)  # (N,)


def terms(mu, logvar):
    """The (N, D) terms 1 + logvar - mu^2 - exp(logvar), whose sum times -1/2 is the KL."""
    return 1 + logvar - mu**2 - logvar.exp()


def cases(draw):
    found = []
    for n, d in [(4, 8), (1, 2), (6, 3), (3, 16), (8, 5), (2, 32)]:
        mu, logvar = draw.normal(n, d, scale=1.5), draw.normal(n, d)  # float64
        found.append(Case((mu, logvar), f"mu and logvar of shape ({n}, {d})"))
    return found


def as_std(mu, logvar, std):
    """The KL with sigma = std(logvar), i.e. the variance std**2."""
    var = std(logvar) ** 2
    return 0.5 * (mu**2 + var - 1 - torch.log(var)).sum(dim=1)


QUESTION = Question(
    name="q2",
    function="kl_term",
    points=points,
    reference=reference,
    oracle="torch.distributions.kl_divergence(Normal(mu, sigma), Normal(0, 1)).sum(dim=1)",
    cases=cases,
    mistakes=(
        Mistake("the sign is flipped: the KL is -1/2 sum (1 + logvar - mu^2 - exp(logvar)), which is >= 0. "
                "A negative KL rewards the encoder for moving away from the prior.",
                value=lambda mu, lv: 0.5 * terms(mu, lv).sum(dim=1)),
        Mistake("this is the mean over the latent dimensions: the KL of independent coordinates is their sum "
                "(sum(dim=1)); the mean divides the KL term by D and lets the codes drift from the prior.",
                value=lambda mu, lv: -0.5 * terms(mu, lv).mean(dim=1)),
        Mistake("one number for the whole batch, the mean over every element (torch.mean of the (N, D) terms): "
                "sum over the latent dimensions for each image and return one KL per image, shape (N,).",
                value=lambda mu, lv: -0.5 * terms(mu, lv).mean()),
        Mistake("one number for the whole batch: return one KL per image, shape (N,) (sum over dim=1 only).",
                value=lambda mu, lv: -0.5 * terms(mu, lv).sum()),
        Mistake("one number for the whole batch, the batch mean of the KL: return one KL per image, shape (N,) "
                "(the ELBO's mean over the batch comes later).",
                value=lambda mu, lv: -0.5 * terms(mu, lv).sum(dim=1).mean()),
        Mistake("logvar is used as a standard deviation: it is the log of the variance, sigma^2 = exp(logvar), "
                "and log sigma^2 = logvar.", value=lambda mu, lv: as_std(mu, lv, lambda v: v)),
        Mistake("exp(logvar) is used as the standard deviation: it is the variance, so sigma = exp(logvar / 2).",
                value=lambda mu, lv: as_std(mu, lv, torch.exp)),
        Mistake("the factor 1/2 is missing.", value=lambda mu, lv: -terms(mu, lv).sum(dim=1)),
    ),
    hints=(
        "For one coordinate, KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - 1 - log s^2) / 2, with s^2 = exp(logvar).",
        "Compute the (N, D) terms, then sum over the latent dimensions (dim=1) only.",
        "The result has shape (N,) and is never negative; it is 0 where mu = 0 and logvar = 0.",
    ),
    forbidden=Forbidden(
        modules=("companion.losses", "companion.vae", "torch.distributions"),
        names=("kl_divergence", "kl_div", "kl_divergence_normal"),
        what="the KL term (with its formula)",
    ),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_kl_term(kl_term):
    QUESTION.assert_passes(kl_term)
