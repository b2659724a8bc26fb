"""Exercise 7, question 4: the parameter-free shortcut of the paper's option A, ``option_a_shortcut``.

Where a block changes the shape, the paper's option A keeps the shortcut free of parameters: it
subsamples the input with the block's stride and pads the new channels with zeros (He et al.,
*Deep Residual Learning for Image Recognition*, CVPR 2016, https://arxiv.org/abs/1512.03385,
Section 3.3 and the CIFAR networks of Section 4.2). The reference is torch: that shortcut *is* a
1x1 convolution with stride ``stride`` and a fixed weight, the identity matrix padded with zero
rows, ``F.conv2d(x, torch.eye(out_channels, C)[:, :, None, None], stride=stride)``. An otter-grader
exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import CONVOLUTION, Case, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 2


def torch_option_a(x, out_channels, stride):
    identity = torch.eye(out_channels, x.shape[1], dtype=x.dtype)[:, :, None, None]  # (out, C, 1, 1)
    return F.conv2d(x, identity, stride=stride)  # (N, out, ceil(H / s), ceil(W / s))


def _pad_channels(x, before, after):
    return F.pad(x, (0, 0, 0, 0, before, after))  # zeros before and after the channels of (N, C, H, W)


def _same(value, candidate):
    return (isinstance(value, torch.Tensor) and value.shape == candidate.shape
            and torch.allclose(value.double(), candidate.double(), rtol=1e-5, atol=1e-6))


def zeros_misplaced(value, expected, args):
    x, out_channels, stride = args
    extra = out_channels - x.shape[1]
    if extra == 0:
        return None
    sub = x[:, :, ::stride, ::stride]
    return any(_same(value, _pad_channels(sub, before, extra - before)) for before in range(1, extra + 1))


def wrong_phase(x, out_channels, stride):
    if stride == 1:
        return None
    return _pad_channels(x[:, :, 1::stride, 1::stride], 0, out_channels - x.shape[1])


def averaged(value, expected, args):
    x, out_channels, stride = args
    if stride == 1:
        return None
    extra = out_channels - x.shape[1]
    return any(_same(value, _pad_channels(F.avg_pool2d(x, stride, ceil_mode=ceil), 0, extra)) for ceil in (True, False))


def not_subsampled(x, out_channels, stride):
    return None if stride == 1 else _pad_channels(x, 0, out_channels - x.shape[1])


def not_padded(value, expected, args):
    x, out_channels, stride = args
    if out_channels == x.shape[1]:
        return None
    sub = x[:, :, ::stride, ::stride]
    return _same(value, sub) or _same(value, sub.repeat(1, -(-out_channels // x.shape[1]), 1, 1)[:, :out_channels])


# (channels in, extra channels, stride): a new resolution and twice the channels (a CIFAR stage),
# channels only, resolution only, odd sizes.
SETTINGS = [(2, 2, 2), (3, 3, 2), (4, 1, 1), (1, 3, 2), (3, 0, 2), (2, 2, 1), (5, 5, 2), (3, 4, 2)]


def cases(draw):
    found = []
    for channels, extra, stride in SETTINGS:
        h, w = draw.int(3, 9), draw.int(3, 9)
        x = draw.normal(2, channels, h, w)
        found.append(Case((x, channels + extra, stride),
                          f"x of shape (2, {channels}, {h}, {w}), out_channels={channels + extra}, stride={stride}"))
    return found


QUESTION = Question(
    name="q4",
    function="option_a_shortcut",
    points=points,
    reference=torch_option_a,
    oracle="a 1x1 convolution (F.conv2d) with stride `stride` and the identity matrix, padded with zero rows, as weight",
    cases=cases,
    mistakes=(
        Mistake("the stride is ignored: the shortcut must subsample the input to the block's output resolution, "
                "keeping every stride-th row and column.", value=not_subsampled),
        Mistake("the subsampling starts at the wrong pixel: keep rows and columns 0, stride, 2 * stride, ... (the "
                "pixels a 1x1 convolution with that stride sees), so an odd size n gives ceil(n / stride).",
                value=wrong_phase),
        Mistake("the input is averaged: option A subsamples (it keeps one pixel of each stride x stride square) "
                "rather than average-pooling.", matches=averaged),
        Mistake("the new channels are not zeros: option A has no parameters and adds nothing; the extra output "
                "channels are zero.", matches=not_padded),
        Mistake("the zero channels are in the wrong place: keep the input's channels first, in order, and append "
                "the zero channels after them.", matches=zeros_misplaced),
    ),
    hints=(
        "Two separate things change: the resolution (stride) and the number of channels. Handle one, then the "
        "other, and check the shape after each.",
        "Slicing with a step picks every k-th element. Which element should the first one be?",
        "The extra channels carry no information: build them with the right shape, dtype and device, then join "
        "them to the subsampled input along the channel axis.",
    ),
    forbidden=CONVOLUTION.extended(what="the shortcut (by slicing and padding, without a convolution)"),
)


@test_case(points=points)
def test_option_a_shortcut(option_a_shortcut):
    QUESTION.assert_passes(option_a_shortcut)
