"""Exercise 1, question 1: the output size of a convolution, ``conv_output_size``.

The reference is torch itself: the length of ``F.conv1d``'s output on an input of length ``n``.
The arithmetic is laid out in Dumoulin & Visin, "A guide to convolution arithmetic for deep
learning" (2016), https://arxiv.org/abs/1603.07285.
An otter-grader exception-based test file (``name``, ``points``, a ``test_case``) that also
defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2


def torch_output_size(n, kernel_size, stride=1, padding=0, dilation=1):
    """How many positions F.conv1d produces along an axis of length n (None if the kernel does not fit)."""
    try:
        x = torch.zeros(1, 1, n)  # (N, C, L)
        w = torch.zeros(1, 1, kernel_size)  # (C_out, C_in, k)
        return F.conv1d(x, w, stride=stride, padding=padding, dilation=dilation).shape[-1]
    except RuntimeError:
        return None


# (stride, padding, dilation) of each case; sizes are drawn at random. Every mistake below shows
# on at least one of them: padding > 0, stride > 1 with a remainder, dilation > 1.
SETTINGS = [(1, 0, 1), (1, 2, 1), (2, 0, 1), (3, 1, 1), (1, 0, 2), (2, 1, 2), (4, 3, 1), (1, 1, 1),
            (2, 2, 1), (3, 0, 1), (1, 1, 3), (2, 0, 2)]


def cases(draw):
    found = []
    for stride, padding, dilation in SETTINGS:
        kernel = draw.int(1, 7) if padding == 0 else draw.int(max(2, padding), 7)
        span = dilation * (kernel - 1) + 1
        n = draw.int(max(1, span - 2 * padding), span + 30)
        if stride > 1 and (n + 2 * padding - span) % stride == 0:
            n += 1  # a remainder, so that / and // differ
        found.append(Case((n, kernel, stride, padding, dilation),
                          f"n={n}, kernel_size={kernel}, stride={stride}, padding={padding}, dilation={dilation}"))
    return found


def returned_float(value, expected, args):
    return type(value) is float and abs(value - expected) < 1


def off_by_one(value, expected, args):
    return type(value) is int and abs(value - expected) == 1


QUESTION = Question(
    name="q1",
    function="conv_output_size",
    points=points,
    reference=torch_output_size,
    oracle="the output length of torch.nn.functional.conv1d",
    cases=cases,
    mistakes=(
        Mistake("the result is a float: the number of positions is a whole number, so divide with // "
                "(floor division), not /.", matches=returned_float),
        Mistake("padding is ignored: it adds `padding` positions on *both* sides of the input.",
                value=lambda n, k, s, p, d: torch_output_size(n, k, s, 0, d) if p else None),
        Mistake("padding is counted on one side only: it is added on both sides, so it counts twice.",
                value=lambda n, k, s, p, d: torch_output_size(n - p, k, s, p, d) if p and n > p else None),
        Mistake("the stride is ignored: the kernel moves `stride` positions at a time, which divides the "
                "number of steps.", value=lambda n, k, s, p, d: torch_output_size(n, k, 1, p, d) if s > 1 else None),
        Mistake("the dilation is ignored: a dilated kernel spans dilation * (kernel_size - 1) + 1 input positions.",
                value=lambda n, k, s, p, d: torch_output_size(n, k, s, p, 1) if d > 1 else None),
        Mistake("off by one: the sizes are one too few or one too many. Test two extremes: a kernel as "
                "long as the (padded) input fits exactly once, and a kernel of size 1 with stride 1 fits n "
                "times.", matches=off_by_one),
    ),
    forbidden=Forbidden(ops=("aten.convolution", "aten._convolution", "aten.conv1d", "aten.conv2d"),
                        modules=("companion.conv",), names=("conv1d", "conv2d", "Conv1d", "Conv2d", "conv_output_size"),
                        what="the output-size formula (without running a convolution)"),
    hints=(
        "Start without stride and padding: a kernel of size k fits at how many positions of an input of size n? "
        "Try n=5, k=3 on paper.",
        "Padding makes the input longer on both sides; dilation makes the kernel span more positions.",
        "With a stride s, count the steps of size s that the kernel can take after its first position, "
        "then add that first position.",
    ),
)


@test_case(points=points)
def test_conv_output_size(conv_output_size):
    QUESTION.assert_passes(conv_output_size)
