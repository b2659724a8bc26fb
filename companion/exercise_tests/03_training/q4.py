"""Exercise 3, question 4: group normalisation from scratch, ``group_norm``.

Each image's C channels are split into G groups of C/G *consecutive* channels, and each group of
each image is standardised over its channels and positions with the biased variance, then scaled
and shifted per channel. The reference is ``torch.nn.functional.group_norm``. Each known mistake is
a normalisation over other axes (groups of interleaved channels, the batch included, one group per
channel, all channels at once) or the unbiased variance.
Wu & He (2018), https://arxiv.org/abs/1803.08494.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 3


def torch_group_norm(x, num_groups, gamma, beta, eps):
    return F.group_norm(x, num_groups, gamma, beta, eps)


def standardised(x, groups_shape, axes, eps, unbiased=False):
    """x viewed as groups_shape, standardised over axes, back to x's shape."""
    v = x.reshape(groups_shape)
    mean = v.mean(dim=axes, keepdim=True)
    var = v.var(dim=axes, unbiased=unbiased, keepdim=True)
    return ((v - mean) / torch.sqrt(var + eps)).reshape(x.shape)


def affine(x_hat, gamma, beta):
    return gamma.view(1, -1, 1, 1) * x_hat + beta.view(1, -1, 1, 1)  # (C,) -> (1, C, 1, 1)


def interleaved(x, g, gamma, beta, eps):
    """Groups of every G-th channel: channel c in group c % G (a reshape (N, C/G, G, H, W))."""
    n, c, h, w = x.shape
    if g in (1, c):
        return None
    return affine(standardised(x, (n, c // g, g, h, w), (1, 3, 4), eps), gamma, beta)


def with_batch(x, g, gamma, beta, eps):
    """Each group's statistics over the whole batch too."""
    n, c, h, w = x.shape
    if n == 1:
        return None
    return affine(standardised(x, (n, g, c // g, h, w), (0, 2, 3, 4), eps), gamma, beta)


def unbiased(x, g, gamma, beta, eps):
    n, c, h, w = x.shape
    return affine(standardised(x, (n, g, c // g, h, w), (2, 3, 4), eps, unbiased=True), gamma, beta)


SETTINGS = [(2, 6, 2, 4, 4), (3, 8, 4, 3, 3), (1, 6, 3, 5, 4), (4, 4, 2, 2, 3), (2, 9, 3, 3, 3),
            (2, 8, 1, 3, 3), (2, 4, 4, 3, 3)]  # N, C, G, H, W


def cases(draw):
    found = []
    for n, c, g, h, w in SETTINGS:
        x = draw.normal(n, c, h, w, scale=2.0) + draw.normal(1, c, 1, 1, scale=2.0)  # a mean per channel
        gamma, beta = 1 + draw.normal(c, scale=0.5), draw.normal(c)
        found.append(Case((x, g, gamma, beta, 1e-5), f"x of shape ({n}, {c}, {h}, {w}), num_groups={g}"))
    return found


QUESTION = Question(
    name="q4",
    function="group_norm",
    points=points,
    reference=torch_group_norm,
    oracle="torch.nn.functional.group_norm",
    cases=cases,
    mistakes=(
        Mistake("the groups are over the wrong axis: they hold every G-th channel (channel c in group c % G), "
                "as x.reshape(N, C // G, G, H, W) makes them. A group is C/G *consecutive* channels: reshape "
                "to (N, G, C // G, H, W).", value=interleaved),
        Mistake("the statistics include the batch: group norm standardises each image on its own, over the "
                "channels of one group and all positions, never across images.", value=with_batch),
        Mistake("each channel is normalised on its own (instance norm): num_groups channels share nothing; the "
                "statistics are over the C/G channels of a group.",
                value=lambda x, g, gm, b, e: (affine(standardised(x, x.shape, (2, 3), e), gm, b)
                                              if g != x.shape[1] else None)),
        Mistake("all channels are normalised together (layer norm): split them into num_groups groups first.",
                value=lambda x, g, gm, b, e: affine(standardised(x, x.shape, (1, 2, 3), e), gm, b) if g > 1 else None),
        Mistake("the variance is the unbiased one (divided by M - 1): normalise with the biased variance, "
                "divided by the number of values M.", value=unbiased),
    ),
    hints=(
        "Reshape x from (N, C, H, W) to (N, G, C // G, H, W): which axes hold the values of one group of "
        "one image?",
        "Take the mean and the biased variance over those axes (keepdim=True), standardise, reshape back.",
        "gamma and beta have one value per channel, (C,): view them as (1, C, 1, 1) after reshaping back.",
    ),
    forbidden=Forbidden(
        ops=("aten.native_group_norm", "aten.group_norm", "aten.native_layer_norm", "aten.layer_norm",
             "aten.instance_norm", "aten.batch_norm", "aten.native_batch_norm", "aten.batch_norm_update_stats",
             "aten.batch_norm_stats"),
        modules=("companion.norm",),
        names=("group_norm", "GroupNorm", "layer_norm", "LayerNorm", "instance_norm", "InstanceNorm2d",
               "batch_norm", "BatchNorm2d", "batch_norm_update_stats", "batch_norm_stats"),
        what="group normalisation"),
    rtol=1e-5,
    atol=1e-6,
)


@test_case(points=points)
def test_group_norm(group_norm):
    QUESTION.assert_passes(group_norm)
