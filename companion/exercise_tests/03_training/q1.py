"""Exercise 3, question 1: find the bug in a colleague's batch-norm backward pass, ``batch_norm_backward``.

The notebook shows a colleague's simplified backward pass of training-mode batch norm that leaves
out the path through the mean (the ``- mean(dy)`` term): the typical bug. The learner writes the
fixed ``batch_norm_backward(grad_output, x, gamma, eps)`` returning ``(dx, dgamma, dbeta)``. The
reference is autograd through ``F.batch_norm`` (training mode, statistics over N, H, W). Each known
mistake is the gradient with one term changed.
Ioffe & Szegedy (2015), section 3, https://arxiv.org/abs/1502.03167; CS231n, assignment 2.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 4
AXES = (0, 2, 3)  # statistics per channel over the batch and the positions


def by_autograd(grad_output, x, gamma, eps):
    x, gamma = x.clone().requires_grad_(True), gamma.clone().requires_grad_(True)
    beta = torch.zeros_like(gamma, requires_grad=True)
    y = F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
    return torch.autograd.grad(y, (x, gamma, beta), grad_output)


def variant(*, mean_term=True, var_term=True, gamma_in_dx=True, unbiased=False, swap=False):
    """The simplified backward pass, right with the defaults, or with one thing changed."""

    def backward(dy, x, gamma, eps):
        mean = x.mean(dim=AXES, keepdim=True)
        var = x.var(dim=AXES, unbiased=unbiased, keepdim=True)
        inv_std = (var + eps).rsqrt()
        x_hat = (x - mean) * inv_std
        term = dy
        if mean_term:
            term = term - dy.mean(dim=AXES, keepdim=True)
        if var_term:
            term = term - x_hat * (dy * x_hat).mean(dim=AXES, keepdim=True)
        scale = gamma.view(1, -1, 1, 1) if gamma_in_dx else 1.0  # (C,) -> (1, C, 1, 1)
        dx = scale * inv_std * term
        dgamma, dbeta = (dy * x_hat).sum(dim=AXES), dy.sum(dim=AXES)
        return (dx, dbeta, dgamma) if swap else (dx, dgamma, dbeta)

    return backward


SETTINGS = [(4, 3, 3, 3), (2, 2, 4, 5), (8, 1, 2, 2), (3, 4, 3, 2), (16, 2, 1, 1)]  # N, C, H, W


def cases(draw):
    found = []
    for n, c, h, w in SETTINGS:
        x = draw.normal(n, c, h, w, scale=2.0) + draw.normal(1, c, 1, 1)  # a different mean per channel
        gamma = 0.5 + draw.normal(c).abs()
        found.append(Case((draw.normal(n, c, h, w), x, gamma, 1e-5),
                          f"x of shape ({n}, {c}, {h}, {w}), gamma of shape ({c},), eps=1e-05"))
    return found


QUESTION = Question(
    name="q1",
    function="batch_norm_backward",
    points=points,
    reference=by_autograd,
    oracle="autograd through torch.nn.functional.batch_norm (training mode)",
    cases=cases,
    mistakes=(
        Mistake("this is still the colleague's bug: the path through the mean is missing. Every x moves the "
                "channel's mean, and the mean moves every x_hat, which subtracts mean(dy) (the sum of dy over "
                "the m values, divided by m); then each channel's dx sums to zero.", value=variant(mean_term=False)),
        Mistake("the path through the variance is missing: every x moves the channel's variance too, which "
                "subtracts x_hat * mean(dy * x_hat).", value=variant(var_term=False)),
        Mistake("both paths through the statistics are missing: that is the gradient with mu and sigma held "
                "fixed, as in evaluation mode. In training mode they depend on x.",
                value=variant(mean_term=False, var_term=False)),
        Mistake("gamma is missing from dx: y = gamma * x_hat + beta, so dL/dx_hat = gamma * dy.",
                value=variant(gamma_in_dx=False)),
        Mistake("the variance is the unbiased one (divided by m - 1): batch norm normalises with the biased "
                "variance, divided by m.", value=variant(unbiased=True)),
        Mistake("dgamma and dbeta are swapped: dbeta = sum(dy), dgamma = sum(dy * x_hat), per channel.",
                value=variant(swap=True)),
    ),
    hints=(
        "Compare the colleague's dx with autograd's on one channel: what does autograd's dx sum to over the "
        "batch and the positions, and what does the colleague's?",
        "x reaches the loss along three paths: directly through x - mu, through the mean mu, and through the "
        "variance. The colleague's code has two of them.",
        "Return a tuple of three tensors, (dx, dgamma, dbeta), of the shapes of x, gamma and gamma.",
    ),
    forbidden=Forbidden(
        ops=("aten.native_batch_norm", "aten.native_batch_norm_backward", "aten.batch_norm",
             "aten._batch_norm_impl_index", "aten._batch_norm_impl_index_backward",
             "aten._native_batch_norm_legit", "aten._native_batch_norm_legit_functional"),
        modules=("companion.backward", "companion.norm"),
        names=("backward", "grad", "autograd", "jacobian", "vjp", "batch_norm", "BatchNorm2d", "BatchNorm1d",
               "batch_norm_backward_staged"),
        what="the backward pass of batch norm (with the formula, without autograd)"),
)


@test_case(points=points)
def test_batch_norm_backward(batch_norm_backward):
    QUESTION.assert_passes(batch_norm_backward)
