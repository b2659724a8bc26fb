"""Exercise 24, question 3: find the bug in a colleague's closed-form noising, ``q_sample``.

``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`` with ``abar = cumprod(1 - betas)`` and one
timestep per image, counted from 0 (Ho et al. 2020, eq. 4, https://arxiv.org/abs/2006.11239). The
reference is ``companion.diffusion.q_sample`` (equal to diffusers' ``DDPMScheduler.add_noise``,
tested). The colleague's version forgets the square roots; the other known mistakes are one
square root only, ``t`` off by one, and swapped arguments.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.diffusion import linear_beta_schedule, q_sample
from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 3


def variant(*, root_signal=True, root_noise=True, shift=0, swap=False):
    def noised(x0, t, noise, betas):
        abar = torch.cumprod(1 - betas, 0)
        a = abar[t + shift].view(-1, *([1] * (x0.dim() - 1)))
        signal, rest = (noise, x0) if swap else (x0, noise)
        return (a.sqrt() if root_signal else a) * signal + ((1 - a).sqrt() if root_noise else 1 - a) * rest

    return noised


def cases(draw):
    found = []
    for n, steps in [(4, 1000), (6, 50), (3, 200), (5, 1000)]:
        x0 = torch.rand(n, 1, 6, 6, generator=draw.generator, dtype=torch.float64) * 2 - 1
        t = torch.randint(1, steps - 1, (n,), generator=draw.generator)
        t[0] = 1  # t + 1 and t - 1 stay in range for the off-by-one variants
        noise = draw.normal(n, 1, 6, 6)
        betas = linear_beta_schedule(steps).double()
        found.append(Case((x0, t, noise, betas), f"{n} images (N, 1, 6, 6), T = {steps}, t = {t.tolist()}"))
    return found


QUESTION = Question(
    name="q3",
    function="q_sample",
    points=points,
    reference=q_sample,
    oracle="companion.diffusion.q_sample (== diffusers' DDPMScheduler.add_noise)",
    cases=cases,
    mistakes=(
        Mistake("still the colleague's bug: abar_t and 1 - abar_t are *variances*; the image and the noise are "
                "scaled by their square roots, sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, so that x_t keeps unit "
                "variance.", value=variant(root_signal=False, root_noise=False)),
        Mistake("the square root is missing on abar_t: the image is scaled by sqrt(abar_t).",
                value=variant(root_signal=False)),
        Mistake("the square root is missing on 1 - abar_t: the noise is scaled by sqrt(1 - abar_t).",
                value=variant(root_noise=False)),
        Mistake("t is off by one: abar[t - 1] is the previous step's; timesteps count from 0, and x_t has been "
                "noised by steps 0 to t, so use abar[t].", value=variant(shift=-1)),
        Mistake("t is off by one: abar[t + 1] is the next step's; timesteps count from 0, so use abar[t].",
                value=variant(shift=1)),
        Mistake("the image and the noise are swapped: sqrt(abar_t) multiplies x0, sqrt(1 - abar_t) the noise.",
                value=variant(swap=True)),
    ),
    hints=(
        "abar = torch.cumprod(1 - betas, dim=0); pick one value per image with abar[t].",
        "Reshape the picked values to (N, 1, 1, 1) so they broadcast over each image.",
        "What does the colleague multiply x0 and the noise by? Are those standard deviations or variances?",
    ),
    forbidden=Forbidden(modules=("companion.diffusion", "diffusers"), names=("add_noise",),
                        what="the closed-form noising"),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_q_sample(q_sample):
    QUESTION.assert_passes(q_sample)
