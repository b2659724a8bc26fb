"""Exercise 21, question 3: the reparameterised sample, ``reparameterise``.

``z = mu + exp(logvar / 2) * eps``, given the noise ``eps``. The grader calls the learner's function on
leaf tensors that require gradients, backpropagates a random upstream gradient, and compares ``z`` and
the gradients with respect to ``mu`` and ``logvar`` with the formula's (``dz/dmu = 1``,
``dz/dlogvar = exp(logvar / 2) * eps / 2``). Known mistakes: logvar read as the log of the standard
deviation or as the standard deviation, no standard deviation at all, a detached sample, and a sample
drawn with ``torch.normal`` (whose gradients are zero). Kingma & Welling (2014), section 2.4,
https://arxiv.org/abs/1312.6114.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 3
GRAD_MU = "its gradient with respect to mu"
GRAD_LOGVAR = "its gradient with respect to logvar"


def sample_and_gradients(function, mu, logvar, eps, upstream):
    """How the learner's function is called: on leaves that require gradients, then differentiated."""
    m, lv = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    z = function(m, lv, eps.clone())
    if not isinstance(z, torch.Tensor) or z.shape != mu.shape:
        raise TypeError(f"reparameterise must return a tensor of the shape of mu, {tuple(mu.shape)}, got "
                        f"{type(z).__name__}{' of shape ' + str(tuple(z.shape)) if isinstance(z, torch.Tensor) else ''}")
    if z.requires_grad:
        grad_mu, grad_lv = torch.autograd.grad((upstream * z).sum(), (m, lv), allow_unused=True)
    else:
        grad_mu = grad_lv = None
    return {"z": z.detach(),
            GRAD_MU: torch.zeros_like(m) if grad_mu is None else grad_mu,
            GRAD_LOGVAR: torch.zeros_like(lv) if grad_lv is None else grad_lv}


def variant(std=lambda lv: torch.exp(0.5 * lv), detach=False):
    def reparameterise(mu, logvar, eps):
        z = mu + std(logvar) * eps
        return z.detach() if detach else z

    return lambda *args: sample_and_gradients(reparameterise, *args)


def cases(draw):
    found = []
    for n, d in [(4, 8), (1, 2), (6, 3), (3, 16), (5, 5)]:
        mu, logvar, eps, upstream = (draw.normal(n, d, scale=1.5), draw.normal(n, d), draw.normal(n, d),
                                     draw.normal(n, d))  # float64
        found.append(Case((mu, logvar, eps, upstream), f"mu, logvar and eps of shape ({n}, {d})"))
    return found


def no_gradient_other_values(got, expected, args):
    """Zero gradients and values that do not follow from eps: a sample drawn with torch.normal or randn."""
    if not isinstance(got, dict) or set(got) != set(expected):
        return None
    if not all(isinstance(got[k], torch.Tensor) and got[k].shape == expected[k].shape for k in got):
        return None
    no_gradient = bool((got[GRAD_MU] == 0).all() and (got[GRAD_LOGVAR] == 0).all())
    return no_gradient and not torch.allclose(got["z"].double(), expected["z"].double(), rtol=1e-4, atol=1e-6)


QUESTION = Question(
    name="q3",
    function="reparameterise",
    points=points,
    reference=variant(),
    oracle="mu + exp(logvar / 2) * eps and its gradients by autograd",
    cases=cases,
    call=sample_and_gradients,
    mistakes=(
        Mistake("exp(logvar) is used as the standard deviation: logvar is the log of the variance, so "
                "sigma = exp(logvar / 2) (the square root of exp(logvar)).", value=variant(std=torch.exp)),
        Mistake("logvar is used as the standard deviation: it is the log of the variance, so "
                "sigma = exp(logvar / 2) (and it may be negative).", value=variant(std=lambda lv: lv)),
        Mistake("z = mu + eps leaves out the standard deviation: z = mu + sigma * eps with "
                "sigma = exp(logvar / 2), or no gradient ever reaches logvar and the variance is never learnt.",
                value=variant(std=lambda lv: torch.ones_like(lv))),
        Mistake("z has the right values but no gradient reaches mu and logvar: it was detached (.detach(), "
                ".item(), torch.no_grad() or a new tensor). The trick only works if z is computed from mu and "
                "logvar with differentiable operations.", value=variant(detach=True)),
        Mistake("z does not use the given eps and passes no gradient back: a sample drawn with torch.normal(mu, "
                "std) (or a new randn) is not reparameterised; its gradients with respect to mu and logvar are "
                "zero. Write z = mu + sigma * eps with the eps you are given.", matches=no_gradient_other_values),
    ),
    hints=(
        "logvar is log(sigma^2): how do you get sigma from it?",
        "All the randomness is in eps, which you are given: z is a deterministic function of mu, logvar and eps.",
        "Return a tensor of the shape of mu, computed with tensor operations (no .detach(), no torch.normal).",
    ),
    forbidden=Forbidden(
        modules=("companion.vae", "torch.distributions"),
        names=("rsample", "reparameterise", "reparameterize"),
        what="the reparameterised sample",
    ),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_reparameterise(reparameterise):
    QUESTION.assert_passes(reparameterise)
