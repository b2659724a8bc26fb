"""Exercise 1, question 3: find the bug in a colleague's convolution and fix it, ``conv2d``.

The notebook shows a colleague's multi-channel 2-D convolution (bias, stride, padding) that flips
the kernel, the textbook convolution, where deep learning's "convolution" is a cross-correlation:
the chapter's typical bug. The learner writes the fixed ``conv2d``. The reference is
``torch.nn.functional.conv2d`` on a batch of one image. Each known mistake is
``F.conv2d`` on changed arguments (a flipped kernel, no padding, stride 1, no bias, ...).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import CONVOLUTION, Case, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 5


def torch_conv2d(x, weight, bias, stride, padding):
    return F.conv2d(x[None], weight, bias, stride, padding)[0]  # (C_in, H, W) -> (1, C_in, H, W) -> (C_out, H', W')


# (stride, padding, bias?, C_in, C_out) of each case; sizes and values are random. Together they
# tell every mistake below from the right answer.
SETTINGS = [(1, 0, True, 1, 1), (1, 1, True, 2, 3), (2, 0, True, 3, 2), (2, 1, True, 2, 2),
            (3, 2, False, 1, 2), (1, 2, True, 3, 3), (2, 2, True, 2, 1), (1, 0, False, 2, 2)]


def cases(draw):
    found = []
    for stride, padding, with_bias, c_in, c_out in SETTINGS:
        kh, kw = draw.int(1, 3), draw.int(2, 3)
        h, w = draw.int(kh + 2, 8), draw.int(kw + 2, 8)
        x, weight = draw.normal(c_in, h, w), draw.normal(c_out, c_in, kh, kw)
        bias = draw.normal(c_out) if with_bias else None
        label = (f"x of shape ({c_in}, {h}, {w}), weight ({c_out}, {c_in}, {kh}, {kw}), "
                 f"bias {'of shape (' + str(c_out) + ',)' if with_bias else 'None'}, stride={stride}, padding={padding}")
        found.append(Case((x, weight, bias, stride, padding), label))
    return found


def unstrided_windows(x, weight, bias, stride, padding):
    """The right output size, but output (i, j) reads the window at (i, j): the stride-1 output, cropped."""
    if stride == 1:
        return None
    height, width = torch_conv2d(x, weight, bias, stride, padding).shape[1:]
    return torch_conv2d(x, weight, bias, 1, padding)[:, :height, :width]


def size_off_by_one(value, expected, args):
    return (isinstance(value, torch.Tensor) and value.dim() == 3 and value.shape[0] == expected.shape[0]
            and value.shape != expected.shape and all(abs(a - b) <= 1 for a, b in zip(value.shape[1:], expected.shape[1:])))


def not_summed_over_channels(value, expected, args):
    c_in = args[0].shape[0]
    return isinstance(value, torch.Tensor) and tuple(value.shape) == (expected.shape[0], c_in, *expected.shape[1:])


def summed_over_output_channels(value, expected, args):
    c_in, c_out = args[0].shape[0], args[1].shape[0]
    if c_in == c_out:
        return None  # the shape cannot tell
    return isinstance(value, torch.Tensor) and tuple(value.shape) == (c_in, *expected.shape[1:])


QUESTION = Question(
    name="q3",
    function="conv2d",
    points=points,
    reference=torch_conv2d,
    oracle="torch.nn.functional.conv2d",
    cases=cases,
    mistakes=(
        Mistake("the kernel is still flipped: that is the colleague's bug, the textbook convolution. conv2d "
                "is a cross-correlation: weight[o, c, u, v] multiplies x[c, i*stride + u, j*stride + v], "
                "with no flip.",
                value=lambda x, w, b, s, p: torch_conv2d(x, w.flip(-2, -1), b, s, p)),
        Mistake("padding is missing: pad x with `padding` zeros on every side (top, bottom, left, right) "
                "before sliding the kernel.",
                value=lambda x, w, b, s, p: torch_conv2d(x, w, b, s, 0) if p else None),
        Mistake("the padding is on the top and left only: add `padding` zeros on both sides of each axis.",
                value=lambda x, w, b, s, p: torch_conv2d(F.pad(x, (p, 0, p, 0)), w, b, s, 0) if p else None),
        Mistake("the stride is ignored: output (i, j) reads the window starting at (i*stride, j*stride), "
                "so a stride > 1 gives a smaller output.",
                value=lambda x, w, b, s, p: torch_conv2d(x, w, b, 1, p) if s > 1 else None),
        Mistake("the output has the right size but the windows ignore the stride: output (i, j) must read "
                "the window starting at (i*stride, j*stride), not at (i, j).",
                value=unstrided_windows),
        Mistake("the bias is forgotten: add bias[o] to every position of output channel o.",
                value=lambda x, w, b, s, p: torch_conv2d(x, w, None, s, p) if b is not None else None),
        Mistake("the bias is added once per input channel: sum over the input channels first, then add "
                "bias[o] once.",
                value=lambda x, w, b, s, p: (torch_conv2d(x, w, None, s, p) + x.shape[0] * b[:, None, None]
                                             if b is not None and x.shape[0] > 1 else None)),  # (C_out,) -> (C_out, 1, 1)
        Mistake("channels summed wrongly: only the first input channel is used. Output channel o sums the "
                "correlations of *every* input channel c with weight[o, c].",
                value=lambda x, w, b, s, p: torch_conv2d(x[:1], w[:, :1], b, s, p) if x.shape[0] > 1 else None),
        Mistake("channels summed wrongly: the input channels are averaged, not summed.",
                value=lambda x, w, b, s, p: (torch_conv2d(x, w, None, s, p) / x.shape[0]
                                             + (0 if b is None else b[:, None, None])  # (C_out,) -> (C_out, 1, 1)
                                             if x.shape[0] > 1 else None)),
        Mistake("channels summed wrongly: weight's first two axes are swapped. weight has shape "
                "(C_out, C_in, kh, kw): output channel o uses weight[o, c], not weight[c, o].",
                value=lambda x, w, b, s, p: (torch_conv2d(x, w.transpose(0, 1), b, s, p)
                                             if w.shape[0] == w.shape[1] > 1 else None)),  # (C_in, C_out, kh, kw)
        Mistake("channels summed wrongly: the output keeps one map per (output, input) channel pair, "
                "shape (C_out, C_in, H', W'). Sum over the input channels to get (C_out, H', W').",
                matches=not_summed_over_channels),
        Mistake("channels summed wrongly: the output has one map per *input* channel. Sum over the input "
                "channels, keep the output channels: the result is (C_out, H', W').",
                matches=summed_over_output_channels),
        Mistake("the output size is off by one: H' = (H + 2*padding - kh) // stride + 1, and likewise W'.",
                matches=size_off_by_one),
    ),
    hints=(
        "Run the colleague's function and F.conv2d on a kernel that is not symmetric, e.g. "
        "torch.arange(9.).view(1, 1, 3, 3): which entries of the kernel meet which pixels?",
        "Work out the output shape (C_out, H', W') first, with your conv_output_size from q1, and pad x "
        "once with zeros before any loop.",
        "Output position (o, i, j) is one number: the window x_padded[:, i*stride : i*stride + kh, "
        "j*stride : j*stride + kw] has shape (C_in, kh, kw), like weight[o].",
        "Multiply that window with weight[o] elementwise, sum over all three axes (channels too), then add bias[o].",
    ),
    forbidden=CONVOLUTION,
    rtol=1e-4,
    atol=1e-5,
)


@test_case(points=points)
def test_conv2d(conv2d):
    QUESTION.assert_passes(conv2d)
