"""Exercise 3, question 1: the batch-normalisation forward pass in training mode, ``batch_norm_train``.

Batch normalisation is from Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network
Training by Reducing Internal Covariate Shift" (2015), https://arxiv.org/abs/1502.03167.
The reference is ``torch.nn.functional.batch_norm(..., training=True)``. Each known mistake is
written with torch too (layer norm for the wrong axes, ``eps=0`` for a forgotten epsilon, ...).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 3


def torch_batch_norm(x, gamma, beta, eps):
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


def affine(normalised, gamma, beta):
    return normalised * gamma[:, None, None] + beta[:, None, None]  # (C,) -> (C, 1, 1), broadcast over (N, C, H, W)


def batch_statistics(x):
    return x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)  # (1, C, 1, 1)


def unbiased_variance(x, gamma, beta, eps):
    m = x.shape[0] * x.shape[2] * x.shape[3]  # values per channel
    # var * m/(m-1) under the root is the same as scaling by sqrt((m-1)/m) with eps * (m-1)/m
    return F.batch_norm(x, None, None, gamma * ((m - 1) / m) ** 0.5, beta, training=True, eps=eps * (m - 1) / m)


def eps_forgotten(x, gamma, beta, eps):
    mean, var = batch_statistics(x)  # (F.batch_norm refuses eps=0 in training mode)
    return affine((x - mean) / var.sqrt(), gamma, beta)


def eps_outside_root(x, gamma, beta, eps):
    mean, var = batch_statistics(x)
    return affine((x - mean) / (var.sqrt() + eps), gamma, beta)


def root_forgotten(x, gamma, beta, eps):
    mean, var = batch_statistics(x)
    return affine((x - mean) / (var + eps), gamma, beta)


def over_all_axes(x, gamma, beta, eps):
    flat = x.reshape(1, 1, -1)  # (N, C, H, W) -> (1, 1, N*C*H*W): one "channel" holding everything
    return affine(F.batch_norm(flat, None, None, training=True, eps=eps).reshape(x.shape), gamma, beta)


def over_batch_only(x, gamma, beta, eps):
    flat = x.reshape(x.shape[0], -1)  # (N, C*H*W): every (c, h, w) its own "channel"
    return affine(F.batch_norm(flat, None, None, training=True, eps=eps).reshape(x.shape), gamma, beta)


def affine_on_last_axis(x, gamma, beta, eps):
    if x.shape[1] != x.shape[3]:
        return None  # (C,) only broadcasts against the last axis when W == C
    return F.batch_norm(x, None, None, None, None, training=True, eps=eps) * gamma + beta  # (C,) on the W axis


# (N, C, H, W, eps, scale) of each case; values are random. Large eps with small-variance inputs
# makes a forgotten or misplaced eps visible; W == C makes a wrongly broadcast gamma visible.
SETTINGS = [(4, 3, 3, 3, 1e-5, 1.0), (2, 2, 3, 4, 0.5, 0.4), (3, 3, 2, 3, 0.2, 0.3), (2, 1, 4, 4, 1e-5, 2.0),
            (3, 2, 2, 2, 0.1, 0.2), (2, 3, 4, 2, 1.0, 0.5)]


def cases(draw):
    found = []
    for n, c, h, w, eps, scale in SETTINGS:
        x = draw.normal(n, c, h, w, scale=scale) + draw.normal(1, c, 1, 1)  # a different mean per channel
        gamma, beta = 1 + draw.normal(c, scale=0.5), draw.normal(c)
        found.append(Case((x, gamma, beta, eps), f"x of shape ({n}, {c}, {h}, {w}), eps={eps}"))
    return found


FORBIDDEN = Forbidden(
    ops=("aten.native_batch_norm", "aten._native_batch_norm_legit", "aten._native_batch_norm_legit_functional",
         "aten._native_batch_norm_legit_no_training", "aten.batch_norm", "aten._batch_norm_impl_index",
         "aten.cudnn_batch_norm", "aten.native_layer_norm", "aten.native_group_norm", "aten.instance_norm",
         "aten.batch_norm_stats", "aten.batch_norm_update_stats", "aten.batch_norm_elemt",
         "aten.batch_norm_gather_stats", "aten.batch_norm_gather_stats_with_counts", "aten._batch_norm_with_update",
         "aten._batch_norm_with_update_functional", "aten._batch_norm_no_update", "aten.miopen_batch_norm"),
    modules=("companion.norm",),
    names=("batch_norm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "instance_norm", "InstanceNorm2d",
           "layer_norm", "LayerNorm", "group_norm", "GroupNorm", "native_batch_norm", "batch_norm_stats",
           "batch_norm_update_stats"),
    what="batch normalisation",
)

QUESTION = Question(
    name="q1",
    function="batch_norm_train",
    points=points,
    reference=torch_batch_norm,
    oracle="torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)",
    cases=cases,
    mistakes=(
        Mistake("the variance is the unbiased one (divided by m - 1): batch norm normalises with the biased "
                "variance, the mean of (x - mean)^2 (unbiased=False / correction=0).", value=unbiased_variance),
        Mistake("eps is added to the standard deviation: it goes under the square root, sqrt(var + eps).",
                value=eps_outside_root),
        Mistake("eps is forgotten: divide by sqrt(var + eps), not sqrt(var).",
                value=eps_forgotten),
        Mistake("the square root is missing: divide by the standard deviation sqrt(var + eps), not the variance.",
                value=root_forgotten),
        Mistake("normalised over the wrong axes (C, H, W), per example, like layer norm: batch norm computes one "
                "mean and variance per *channel*, over the batch and the spatial axes (N, H, W).",
                value=lambda x, g, b, eps: affine(F.layer_norm(x, x.shape[1:], eps=eps), g, b)),
        Mistake("normalised over the wrong axes (H, W), per example and channel, like instance norm: batch norm "
                "also averages over the batch, dims (0, 2, 3).",
                value=lambda x, g, b, eps: F.instance_norm(x, weight=g, bias=b, eps=eps)),
        Mistake("normalised over the batch axis only: the mean and variance of a channel are taken over the batch "
                "*and* the spatial axes, dims (0, 2, 3).", value=over_batch_only),
        Mistake("normalised over all axes at once: keep one mean and variance per channel, over dims (0, 2, 3).",
                value=over_all_axes),
        Mistake("gamma and beta are swapped: gamma scales, beta shifts.",
                value=lambda x, g, b, eps: torch_batch_norm(x, b, g, eps)),
        Mistake("gamma and beta are forgotten: after normalising, scale by gamma and shift by beta.",
                value=lambda x, g, b, eps: torch_batch_norm(x, None, None, eps)),
        Mistake("beta is forgotten: after scaling by gamma, shift by beta.",
                value=lambda x, g, b, eps: torch_batch_norm(x, g, None, eps)),
        Mistake("gamma is forgotten: scale by gamma before shifting by beta.",
                value=lambda x, g, b, eps: torch_batch_norm(x, None, b, eps)),
        Mistake("gamma and beta are broadcast along the last axis (W): reshape them to (1, C, 1, 1) so that "
                "they act per channel.", value=affine_on_last_axis),
    ),
    hints=(
        "One mean and one variance per channel: reduce over dims (0, 2, 3) with keepdim=True, so that the "
        "results have shape (1, C, 1, 1) and broadcast against x.",
        "Use the biased variance (unbiased=False) and put eps under the square root.",
        "gamma and beta have shape (C,): reshape them to (1, C, 1, 1) before scaling and shifting.",
    ),
    forbidden=FORBIDDEN,
)


@test_case(points=points)
def test_batch_norm_train(batch_norm_train):
    QUESTION.assert_passes(batch_norm_train)
