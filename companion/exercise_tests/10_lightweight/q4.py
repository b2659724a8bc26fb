"""Exercise 10, question 4: a depthwise convolution from scratch, ``depthwise_conv2d``.

The reference is ``torch.nn.functional.conv2d`` with ``groups`` equal to the number of channels, on
a batch of one image; each known mistake is torch on changed arguments (a flipped kernel, no
padding, stride 1) or a full convolution that sums over the channels. The learner may use loops,
indexing or ``F.unfold``, but no convolution. Howard et al., *MobileNets* (2017), Section 3.1,
https://arxiv.org/abs/1704.04861.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import CONVOLUTION, Case, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 3


def torch_depthwise_conv2d(x, weight, stride=1, padding=0):
    # (C, H, W) -> (1, C, H, W); groups = C: channel c is filtered by weight[c] alone -> (C, H', W')
    return F.conv2d(x[None], weight, stride=stride, padding=padding, groups=x.shape[0])[0]


def summed_over_channels(x, weight, stride=1, padding=0):
    """A full convolution: output channel c adds up weight[c] applied to every input channel."""
    if x.shape[0] == 1:
        return None
    full = weight.expand(-1, x.shape[0], -1, -1)  # (C, 1, k, k) -> (C, C, k, k)
    return F.conv2d(x[None], full, stride=stride, padding=padding)[0]


# (channels, kernel size, stride, padding) of each case; image sizes and values are random.
SETTINGS = [(3, 3, 1, 1), (4, 3, 2, 1), (2, 5, 1, 2), (3, 2, 1, 0), (1, 3, 1, 1), (5, 3, 2, 0), (2, 1, 2, 0),
            (3, 4, 3, 1)]


def cases(draw):
    found = []
    for c, k, stride, padding in SETTINGS:
        h, w = draw.int(k + 1, 9), draw.int(k + 1, 9)
        x, weight = draw.normal(c, h, w), draw.normal(c, 1, k, k)
        found.append(Case((x, weight, stride, padding),
                          f"x of shape ({c}, {h}, {w}), weight ({c}, 1, {k}, {k}), stride={stride}, padding={padding}"))
    return found


QUESTION = Question(
    name="q4",
    function="depthwise_conv2d",
    points=points,
    reference=torch_depthwise_conv2d,
    oracle="torch.nn.functional.conv2d with groups = the number of channels",
    cases=cases,
    mistakes=(
        Mistake("the channels are mixed: output channel c must be input channel c filtered by weight[c] alone, "
                "not the sum of weight[c] over every input channel (that is a full convolution).",
                value=summed_over_channels),
        Mistake("the kernel is flipped: like F.conv2d, compute a cross-correlation, "
                "out[c, i, j] = sum over (a, b) of x[c, i*stride + a, j*stride + b] * weight[c, 0, a, b].",
                value=lambda x, w, s, p: torch_depthwise_conv2d(x, w.flip(-2, -1), s, p)),
        Mistake("the padding is ignored: pad every channel with `padding` zeros on all four sides first.",
                value=lambda x, w, s, p: torch_depthwise_conv2d(x, w, s, 0) if p else None),
        Mistake("the stride is ignored: the window moves `stride` pixels at a time, so the output has "
                "(H + 2 * padding - k) // stride + 1 rows.",
                value=lambda x, w, s, p: torch_depthwise_conv2d(x, w, 1, p) if s > 1 else None),
    ),
    hints=(
        "A depthwise convolution is C separate single-channel convolutions, one per channel, each with its "
        "own k x k filter weight[c, 0].",
        "Output size: (H + 2 * padding - k) // stride + 1 rows, and the same formula for the columns.",
        "Vectorised: pad, then F.unfold gives every k x k window of every channel; multiply by the matching "
        "filter and sum over the k * k taps.",
    ),
    forbidden=CONVOLUTION,
    rtol=1e-4,
    atol=1e-5,
)


@test_case(points=points)
def test_depthwise_conv2d(depthwise_conv2d):
    QUESTION.assert_passes(depthwise_conv2d)
