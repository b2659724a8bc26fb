"""Exercise 8, question 4: a grouped convolution as one ordinary convolution, ``dense_weight``.

A convolution with ``groups=g`` is an ordinary convolution whose weight is block-diagonal in the
channels: output channel ``o`` of group ``j`` sees only the input channels of group ``j``, and the
weights to every other input channel are zero. The reference reads that dense weight off torch's
own grouped convolution: ``F.conv2d(..., groups=g)`` applied to one impulse per input channel returns
the (flipped) kernel that connects it to every output channel. The learner builds it by indexing.
Used by ResNeXt (Xie et al., 2017, https://arxiv.org/abs/1611.05431, Figure 3). An otter-grader
exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import CONVOLUTION, Case, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 2


def torch_dense_weight(weight, groups):
    """The dense (C_out, C_in, kh, kw) weight of F.conv2d(x, weight, groups=groups), from impulse responses."""
    c_out, c_in_per_group, kh, kw = weight.shape
    c_in = c_in_per_group * groups
    impulses = weight.new_zeros(c_in, c_in, 2 * kh - 1, 2 * kw - 1)  # image c: a 1 in channel c, at the centre
    impulses[torch.arange(c_in), torch.arange(c_in), kh - 1, kw - 1] = 1
    response = F.conv2d(impulses, weight, groups=groups)  # (C_in, C_out, kh, kw): the flipped kernels
    return response.transpose(0, 1).flip(-2, -1)  # (C_out, C_in, kh, kw)


def interleaved(weight, groups):
    """Output channel o assigned to group o % groups instead of o // (C_out / groups)."""
    c_out = weight.shape[0]
    if groups == 1 or c_out == groups:
        return None
    dense = torch_dense_weight(weight, groups)
    per_group = c_out // groups
    source = torch.arange(c_out).view(groups, per_group).T.reshape(-1)  # (C_out,): row i*groups + j <- j*per_group + i
    return dense[source]


# (C_out, C_in, groups, kernel) of each case: ResNeXt-like (4 channels per group), depthwise, one group,
# more outputs than inputs per group. Weights are random.
SETTINGS = [(8, 8, 2, 3), (12, 12, 3, 3), (6, 6, 6, 3), (8, 4, 2, 1), (6, 9, 3, 3), (5, 5, 1, 3), (16, 16, 4, 2),
            (8, 12, 4, 3)]


def cases(draw):
    found = []
    for c_out, c_in, groups, k in SETTINGS:
        weight = draw.normal(c_out, c_in // groups, k, k)
        found.append(Case((weight, groups), f"weight of shape {tuple(weight.shape)} (C_in = {c_in}), groups={groups}"))
    return found


QUESTION = Question(
    name="q4",
    function="dense_weight",
    points=points,
    reference=torch_dense_weight,
    oracle="the weight W for which F.conv2d(x, W) == F.conv2d(x, weight, groups=groups)",
    cases=cases,
    mistakes=(
        Mistake("the weight is returned as it is: a grouped weight has shape (C_out, C_in / groups, kh, kw); the "
                "dense one has all C_in input channels, (C_out, C_in, kh, kw).",
                value=lambda w, g: w if g > 1 else None),
        Mistake("the off-diagonal blocks are not zero: output channel o of group j sees only the input channels "
                "of group j; its weights to the other groups' channels are 0.",
                value=lambda w, g: w.repeat(1, g, 1, 1) if g > 1 else None),
        Mistake("the groups are interleaved: group j holds the contiguous output channels j * C_out / g to "
                "(j + 1) * C_out / g - 1, and the contiguous input channels j * C_in / g to (j + 1) * C_in / g - 1.",
                value=interleaved),
    ),
    hints=(
        "Start from a zero tensor of shape (C_out, C_in, kh, kw), with C_in = groups * weight.shape[1].",
        "Group j owns a contiguous block of output channels and a contiguous block of input channels; copy "
        "the matching rows of weight into that block.",
        "Test it: torch.testing.assert_close(F.conv2d(x, dense_weight(w, g)), F.conv2d(x, w, groups=g)).",
    ),
    forbidden=CONVOLUTION.extended(ops=("aten.block_diag",), names=("block_diag",),
                                   what="the block-diagonal weight (by indexing, without a convolution or "
                                        "torch.block_diag)"),
)


@test_case(points=points)
def test_dense_weight(dense_weight):
    QUESTION.assert_passes(dense_weight)
