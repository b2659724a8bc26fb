"""Exercise 4, question 3: transposed convolution of one image, ``conv_transpose2d``.

The reference is ``torch.nn.functional.conv_transpose2d`` on a batch of one image, without
padding; each known mistake is torch on changed arguments (stride 1, a flipped kernel, the weight's
first two axes swapped), an output one row too large or too small, or a scatter that writes each
stamp over the overlapping part of the previous ones instead of adding to it (where the stamps
overlap, ``k > stride``, the overlaps are exactly what makes the checkerboard of chapter 4). The arithmetic is in Dumoulin
& Visin, "A guide to convolution arithmetic for deep learning" (2016),
https://arxiv.org/abs/1603.07285, Section 4. An otter-grader exception-based test file that also
defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import CONVOLUTION, Case, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 4


def torch_conv_transpose2d(x, weight, stride=1):
    return F.conv_transpose2d(x[None], weight, stride=stride)[0]  # (C_in, H, W) -> (1, C_in, H, W) -> (C_out, H', W')


# (stride, kernel size, C_in, C_out) of each case; image sizes and values are random. Strides
# larger and smaller than the kernel, square and non-square channel counts.
SETTINGS = [(1, 3, 1, 1), (2, 3, 2, 2), (2, 2, 1, 3), (3, 2, 2, 1), (2, 4, 3, 3), (1, 2, 2, 3), (3, 3, 2, 2),
            (2, 3, 3, 2)]


def cases(draw):
    found = []
    for stride, k, c_in, c_out in SETTINGS:
        h, w = draw.int(2, 5), draw.int(2, 5)
        x, weight = draw.normal(c_in, h, w), draw.normal(c_in, c_out, k, k)
        found.append(Case((x, weight, stride),
                          f"x of shape ({c_in}, {h}, {w}), weight ({c_in}, {c_out}, {k}, {k}), stride={stride}"))
    return found


def _same(value, candidate):
    return (isinstance(value, torch.Tensor) and value.shape == candidate.shape
            and torch.allclose(value.double(), candidate, rtol=1e-4, atol=1e-5))


def stride_ignored(value, expected, args):
    """Stamps one pixel apart (stride 1): the stride-1 output, or it cropped/zero-padded to the right size."""
    x, weight, stride = args
    if stride == 1:
        return None
    unstrided = torch_conv_transpose2d(x, weight, 1)
    height, width = expected.shape[1:]
    fitted = F.pad(unstrided, (0, max(0, width - unstrided.shape[2]), 0, max(0, height - unstrided.shape[1])))
    return _same(value, unstrided) or _same(value, fitted[:, :height, :width])


def overwritten(x, weight, stride=1):
    """The scatter with ``=`` instead of ``+=``: the last stamp to reach an output pixel wins."""
    k = weight.shape[-1]
    out = x.new_zeros(weight.shape[1], (x.shape[1] - 1) * stride + k, (x.shape[2] - 1) * stride + k)
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            out[:, i * stride:i * stride + k, j * stride:j * stride + k] = torch.einsum("c,cohw->ohw", x[:, i, j], weight)
    return out if k > stride else None  # without overlaps the two agree


def size_off_by_one(value, expected, args):
    return (isinstance(value, torch.Tensor) and value.dim() == 3 and value.shape[0] == expected.shape[0]
            and value.shape != expected.shape and all(abs(a - b) <= 1 for a, b in zip(value.shape[1:], expected.shape[1:])))


FORBIDDEN = CONVOLUTION.extended(
    ops=("aten.conv_transpose2d", "aten.conv_transpose1d", "aten.convolution_backward", "aten.slow_conv_transpose2d"),
    modules=("companion.upsample",),
    names=("conv_transpose1d", "conv_transpose2d", "ConvTranspose1d", "ConvTranspose2d"),
    what="the transposed convolution (with loops, indexing or F.fold, without any convolution)",
)

QUESTION = Question(
    name="q3",
    function="conv_transpose2d",
    points=points,
    reference=torch_conv_transpose2d,
    oracle="torch.nn.functional.conv_transpose2d",
    cases=cases,
    mistakes=(
        Mistake("the stride is ignored: input pixel (i, j) stamps its kernel at (i*stride, j*stride) in the "
                "output, so the stamps are `stride` pixels apart.", matches=stride_ignored),
        Mistake("the kernel is flipped: input pixel (i, j) adds x[c, i, j] * weight[c, o, a, b] at output "
                "(i*stride + a, j*stride + b), with no flip.",
                value=lambda x, w, s: torch_conv_transpose2d(x, w.flip(-2, -1), s)),
        Mistake("weight's first two axes are swapped: for a transposed convolution weight has shape "
                "(C_in, C_out, k, k), input channels first, so input channel c stamps weight[c, o] into output "
                "channel o.",
                value=lambda x, w, s: torch_conv_transpose2d(x, w.transpose(0, 1), s)
                if w.shape[0] == w.shape[1] > 1 else None),  # (C_in, C_out, k, k) read as (C_out, C_in, k, k)
        Mistake("overlapping stamps overwrite each other: where the stamps of neighbouring pixels overlap "
                "(kernel larger than the stride), an output pixel receives the sum of all the taps that land on "
                "it, so add each stamp into the output instead of assigning it.", value=overwritten),
        Mistake("the output size is off by one: H' = (H - 1) * stride + k (the last stamp starts at "
                "(H - 1) * stride and is k rows tall), and likewise W'.", matches=size_off_by_one),
    ),
    hints=(
        "Start from the output shape (C_out, H', W') with H' = (H - 1) * stride + k, filled with zeros.",
        "A convolution gathers a window into one output; its transpose scatters: each input pixel (i, j) "
        "adds a k x k stamp into the output block starting at (i*stride, j*stride).",
        "The stamp of pixel (i, j) for all output channels at once: sum over c of x[c, i, j] * weight[c], "
        "a (C_out, k, k) tensor.",
    ),
    forbidden=FORBIDDEN,
    rtol=1e-4,
    atol=1e-5,
)


@test_case(points=points)
def test_conv_transpose2d(conv_transpose2d):
    QUESTION.assert_passes(conv_transpose2d)
