"""Exercise 3, question 2: find the bug in a colleague's running statistics, ``update_running_stats``.

The notebook shows a colleague's update of batch norm's running statistics that blends in the
*biased* batch variance, the one the forward pass normalises with (a typical bug: PyTorch keeps
the unbiased one, and with small batches the running variance then comes out too small). The
learner writes the fixed update.

Batch normalisation: Ioffe & Szegedy (2015), https://arxiv.org/abs/1502.03167 (section 3.1 for
the statistics used at inference). The reference is
``torch.nn.functional.batch_norm(..., training=True)``, which updates the running
mean and variance it is given in place. An otter-grader exception-based test file that also
defines ``QUESTION`` for ``companion.grade``.
"""

import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 2


def torch_running_stats(running_mean, running_var, x, momentum):
    mean, var = running_mean.clone(), running_var.clone()
    F.batch_norm(x, mean, var, training=True, momentum=momentum)  # updates mean and var in place
    return mean, var


def biased_running_variance(running_mean, running_var, x, momentum):
    mean, _ = torch_running_stats(running_mean, running_var, x, momentum)
    biased = x.var(dim=(0, 2, 3), unbiased=False)  # (C,)
    return mean, (1 - momentum) * running_var + momentum * biased


# momentum of each case; the running statistics, batch sizes and values are random.
MOMENTA = [0.1, 0.1, 0.3, 0.05, 0.2]


def cases(draw):
    found = []
    for momentum in MOMENTA:
        n, c, h, w = draw.int(2, 4), draw.int(1, 3), draw.int(2, 3), draw.int(2, 3)
        x = draw.normal(n, c, h, w, scale=2.0) + draw.normal(1, c, 1, 1)
        running_mean, running_var = draw.normal(c), 1 + draw.normal(c).abs()
        found.append(Case((running_mean, running_var, x, momentum),
                          f"x of shape ({n}, {c}, {h}, {w}), momentum={momentum}"))
    return found


QUESTION = Question(
    name="q2",
    function="update_running_stats",
    points=points,
    reference=torch_running_stats,
    oracle="torch.nn.functional.batch_norm(x, running_mean, running_var, training=True, momentum=momentum)",
    cases=cases,
    mistakes=(
        Mistake("this is still the colleague's bug: the running variance uses the biased batch variance. "
                "PyTorch normalises the batch with the biased variance but updates running_var with the "
                "*unbiased* one (divided by m - 1).",
                value=biased_running_variance),
        Mistake("the momentum is reversed: PyTorch's momentum is the weight of the *new* batch statistic, "
                "new = (1 - momentum) * running + momentum * batch.",
                value=lambda m, v, x, momentum: torch_running_stats(m, v, x, 1 - momentum)),
        Mistake("the running statistics are replaced by the batch statistics: blend them with the momentum.",
                value=lambda m, v, x, momentum: torch_running_stats(m, v, x, 1.0)),
        Mistake("the running statistics are not updated: return the blended new values.",
                value=lambda m, v, x, momentum: (m, v)),
    ),
    hints=(
        "Compare the colleague's running_var with nn.BatchNorm2d's after one batch of 2 images of 1 x 1 pixels: "
        "by what factor do they differ, and how does that factor depend on the batch?",
        "Compute the batch mean and variance per channel, over dims (0, 2, 3).",
        "new = (1 - momentum) * running + momentum * batch_statistic, for the mean and for the variance.",
        "For the running variance PyTorch uses the unbiased batch variance (divided by m - 1, m = N*H*W).",
    ),
    forbidden=Forbidden(ops=("aten.native_batch_norm", "aten._native_batch_norm_legit", "aten.batch_norm",
                             "aten._native_batch_norm_legit_functional", "aten._batch_norm_impl_index",
                             "aten.batch_norm_stats", "aten.batch_norm_update_stats", "aten.batch_norm_elemt",
                             "aten._batch_norm_with_update", "aten._batch_norm_with_update_functional",
                             "aten._batch_norm_no_update", "aten._native_batch_norm_legit_no_training"),
                        modules=("companion.norm",),
                        names=("batch_norm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "batch_norm_update_stats",
                               "batch_norm_stats"),
                        what="the running-statistics update"),
)


@test_case(points=points)
def test_update_running_stats(update_running_stats):
    QUESTION.assert_passes(update_running_stats)
