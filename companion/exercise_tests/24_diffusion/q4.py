"""Exercise 24, question 4: find the bugs in a colleague's ancestral sampling step, ``reverse_step``.

Ho et al.'s Algorithm 2 with ``sigma_t^2 = beta_t`` and timesteps counted from 0:
``x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma_t z``, with no noise in
the last step (``t = 0``). The reference is ``companion.diffusion.ddpm_step(..., variance="large",
clip=False)`` (equal to diffusers' ``DDPMScheduler.step`` with ``variance_type="fixed_large"``,
tested). The colleague copied Algorithm 2, which counts from 1, into a loop that counts from 0:
the schedule is read one step early and the noise is skipped at ``t = 1`` instead of ``t = 0``.
Other known mistakes: noise in the last step, the network's output read as ``x0``, ``beta`` for the
standard deviation, the posterior variance instead of the asked ``beta_t``.
https://arxiv.org/abs/2006.11239
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.diffusion import ddpm_step, linear_beta_schedule
from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 4


def reference(eps, x_t, t, betas, z):
    return ddpm_step(eps, x_t, t, betas, z, variance="large", clip=False)


def variant(*, shift=0, last_noise=False, skip_at_one=False, as_x0=False, std=None):
    def step(eps, x_t, t, betas, z):
        alphas = 1 - betas
        abar = torch.cumprod(alphas, 0)
        i = t + shift
        if as_x0:  # the posterior mean with x0 := the network's output
            prev = abar[i - 1] if i > 0 else torch.ones((), dtype=betas.dtype)
            mean = (prev.sqrt() * betas[i] / (1 - abar[i])) * eps + (
                alphas[i].sqrt() * (1 - prev) / (1 - abar[i])) * x_t
        else:
            mean = (x_t - betas[i] / (1 - abar[i]).sqrt() * eps) / alphas[i].sqrt()
        noisy = t > 1 if skip_at_one else (True if last_noise else t > 0)
        if not noisy:
            return mean
        if std == "beta":
            sigma = betas[i]
        elif std == "tilde":
            prev = abar[i - 1]
            sigma = ((1 - prev) / (1 - abar[i]) * betas[i]).sqrt()
        else:
            sigma = betas[i].sqrt()
        return mean + sigma * z

    return step


def cases(draw):
    found = []
    for t, steps in [(0, 1000), (1, 1000), (500, 1000), (999, 1000), (0, 50), (1, 50), (27, 50)]:
        eps, x_t, z = draw.normal(3, 1, 5, 5), draw.normal(3, 1, 5, 5), draw.normal(3, 1, 5, 5)
        found.append(Case((eps, x_t, t, linear_beta_schedule(steps).double(), z),
                          f"t = {t}, T = {steps}, eps, x_t and z of shape (3, 1, 5, 5)"))
    return found


QUESTION = Question(
    name="q4",
    function="reverse_step",
    points=points,
    reference=reference,
    oracle='companion.diffusion.ddpm_step(eps, x_t, t, betas, z, variance="large", clip=False)',
    cases=cases,
    mistakes=(
        Mistake("still the colleague's bugs: Algorithm 2 counts t from 1 to T, the course's timesteps from 0 to "
                "T - 1. Read the schedule at t (betas[t], abar[t]), not t - 1 (at t = 0, index -1 is the *last* "
                "step's!), and add noise whenever t > 0: only the step at t = 0 gives the sample.",
                value=variant(shift=-1, skip_at_one=True)),
        Mistake("t is off by one: timesteps count from 0 here, so the step at t uses betas[t] and abar[t], not "
                "index t - 1 (at t = 0 that is index -1, the last step's).", value=variant(shift=-1)),
        Mistake("the noise is skipped at t = 1 as well: with timesteps counted from 0, only the last step "
                "(t = 0) adds no noise (Algorithm 2's 't > 1' is 't > 0' here).", value=variant(skip_at_one=True)),
        Mistake("noise is added at the last step (t = 0): its output is the sample, and noise added there stays "
                "in the image. Return the mean when t == 0.", value=variant(last_noise=True)),
        Mistake("the network's output is read as x0, but the loss trained it to predict the noise eps: use "
                "Algorithm 2's mean, (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t).",
                value=variant(as_x0=True)),
        Mistake("beta_t is the variance of the added noise: its standard deviation is sqrt(beta_t).",
                value=variant(std="beta")),
        Mistake("this is the posterior variance beta_tilde, which Ho et al. found to work too; this question asks "
                "for sigma_t^2 = beta_t.", value=variant(std="tilde")),
    ),
    hints=(
        "Algorithm 2 counts t from 1 to T; your t counts from 0 to T - 1. Which index of betas belongs to t?",
        "alphas = 1 - betas; abar = torch.cumprod(alphas, 0); the mean is (x_t - beta_t / sqrt(1 - abar_t) eps) "
        "/ sqrt(alpha_t).",
        "Which step must not add noise, when t counts from 0?",
    ),
    forbidden=Forbidden(modules=("companion.diffusion", "diffusers"), names=("ddpm_step", "DDPMScheduler"),
                        what="the sampling step"),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_reverse_step(reverse_step):
    QUESTION.assert_passes(reverse_step)
