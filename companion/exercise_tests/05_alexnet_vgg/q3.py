"""Exercise 5, question 3: a linear layer evaluated densely, as a convolution would, ``dense_scores``.

A linear layer trained on flattened ``(C, h, w)`` feature maps is a ``h x w`` convolution: VGG's
dense evaluation slides it over the larger feature map of a larger image. The learner computes the
scores of every window position without a convolution (loops, ``unfold`` and matrix products are
fine); the reference is ``F.conv2d`` with the weight reshaped to ``(K, C, h, w)``. Each known
mistake is that convolution with one thing changed (the weight read channels-last, the window
transposed, a stride of one window, no bias, ...).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import CONVOLUTION, Case, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 3


def as_convolution(z, weight, bias, window, *, order="chw", stride=1, use_bias=True):
    """The scores of every window: the linear layer as a (h, w) convolution, with the mistakes' variants."""
    h, w = window
    k, c = weight.shape[0], z.shape[0]
    if order == "chw":  # flatten(z, 1) of a (C, h, w) map: channel first
        kernel = weight.reshape(k, c, h, w)
    elif order == "hwc":  # channels last (as Keras/TensorFlow flatten)
        kernel = weight.reshape(k, h, w, c).permute(0, 3, 1, 2)  # (K, h, w, C) -> (K, C, h, w)
    else:  # "cwh": the window read column by column
        kernel = weight.reshape(k, c, w, h).transpose(2, 3)  # (K, C, w, h) -> (K, C, h, w)
    return F.conv2d(z[None], kernel, bias if use_bias else None, stride=stride)[0]  # (K, H - h + 1, W - w + 1)


def variant(**changes):
    return lambda *args: as_convolution(*args, **changes)


def one_window(z, weight, bias, window):
    return as_convolution(z[:, :window[0], :window[1]], weight, bias, window)  # (K, 1, 1)


def one_too_few(z, weight, bias, window):
    scores = as_convolution(z, weight, bias, window)
    if min(scores.shape[1:]) < 2:
        return None  # cannot show: a single window
    return scores[:, :-1, :-1]


def channels_last(z, weight, bias, window):
    return None if z.shape[0] == 1 else as_convolution(z, weight, bias, window, order="hwc")


def transposed(z, weight, bias, window):
    return None if window[0] == window[1] else as_convolution(z, weight, bias, window, order="cwh")


def strided(z, weight, bias, window):
    return as_convolution(z, weight, bias, window, stride=tuple(window))


SETTINGS = [  # (C, H, W, h, w, K): windows square and not, one channel and several, maps a little larger
    (3, 6, 7, 3, 3, 4), (2, 5, 9, 2, 4, 3), (4, 7, 7, 3, 2, 5), (1, 6, 5, 2, 2, 2), (3, 9, 8, 4, 3, 3),
    (2, 4, 4, 2, 2, 6), (5, 8, 6, 3, 3, 2),
]


def cases(draw):
    found = []
    for c, height, width, h, w, k in SETTINGS:
        z, weight, bias = draw.normal(c, height, width), draw.normal(k, c * h * w), draw.normal(k)
        found.append(Case((z, weight, bias, (h, w)),
                          f"z of shape ({c}, {height}, {width}), weight ({k}, {c * h * w}), window ({h}, {w})"))
    return found


QUESTION = Question(
    name="q3",
    function="dense_scores",
    points=points,
    reference=as_convolution,
    oracle="torch.nn.functional.conv2d with the weight reshaped to (K, C, h, w)",
    cases=cases,
    mistakes=(
        Mistake("the weight's columns are read channels-last, as (h, w, C): nn.Linear after torch.flatten(z, 1) "
                "of a (C, h, w) map sees the values channel by channel, so column (c * h + i) * w + j multiplies "
                "z[c, i, j].", value=channels_last),
        Mistake("the window is transposed: the flattened map runs along the rows first, so position (i, j) of the "
                "window is column i * w + j, with h rows and w columns.", value=transposed),
        Mistake("the windows do not overlap: dense evaluation slides the window by one position (a convolution "
                "with stride 1), not by its own size.", value=strided),
        Mistake("one window position too few along each axis: a map of H rows holds H - h + 1 windows of h rows.",
                value=one_too_few),
        Mistake("only the first window is scored: slide the window over every position of the map.",
                value=one_window),
        Mistake("the bias is forgotten: each score is the dot product plus bias[k], as in nn.Linear.",
                value=variant(use_bias=False)),
    ),
    hints=(
        "The output has one score vector per window position: shape (K, H - h + 1, W - w + 1).",
        "For one position (i, j), cut the window z[:, i:i + h, j:j + w] out, flatten it the way torch.flatten "
        "does, and apply the linear layer to it.",
        "Once that works with loops, you can get all the windows at once with Tensor.unfold (or F.unfold) and one "
        "matrix product.",
    ),
    forbidden=CONVOLUTION,
)


@test_case(points=points)
def test_dense_scores(dense_scores):
    QUESTION.assert_passes(dense_scores)
