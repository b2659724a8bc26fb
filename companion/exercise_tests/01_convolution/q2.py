"""Exercise 1, question 2: 2-D cross-correlation of one channel, ``corr2d``.

The reference is ``torch.nn.functional.conv2d`` (which computes a cross-correlation).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import CONVOLUTION, Case, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 3


def torch_corr2d(x, kernel):
    return F.conv2d(x[None, None], kernel[None, None])[0, 0]  # (H, W) -> (1, 1, H, W) and back


# (kernel height, kernel width) of each case; image sizes and values are random. Non-square
# kernels and images tell rows from columns.
KERNELS = [(3, 3), (2, 3), (3, 1), (1, 2), (2, 2), (3, 2)]


def cases(draw):
    found = []
    for kh, kw in KERNELS:
        h, w = draw.int(kh + 1, 8), draw.int(kw + 2, 9)
        x, kernel = draw.normal(h, w), draw.normal(kh, kw)
        found.append(Case((x, kernel), f"x of shape ({h}, {w}), kernel of shape ({kh}, {kw})"))
    return found


def size_off_by_one(value, expected, args):
    return (isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape != expected.shape
            and all(abs(a - b) <= 1 for a, b in zip(value.shape, expected.shape)))


QUESTION = Question(
    name="q2",
    function="corr2d",
    points=points,
    reference=torch_corr2d,
    oracle="torch.nn.functional.conv2d",
    cases=cases,
    mistakes=(
        Mistake("the kernel is flipped: that is the textbook *convolution*. Deep-learning libraries compute "
                "a cross-correlation, Y[i, j] = sum over (u, v) of X[i + u, j + v] * K[u, v], with no flip.",
                value=lambda x, k: torch_corr2d(x, k.flip(0, 1))),
        Mistake("the kernel is transposed: K[u, v] multiplies X[i + u, j + v], u along rows and v along columns.",
                value=lambda x, k: torch_corr2d(x, k.T)),
        Mistake("the output is transposed: Y[i, j] has i along the rows of X, j along its columns.",
                value=lambda x, k: torch_corr2d(x, k).T),
        Mistake("the output size is off by one: an (H, W) image and a (kh, kw) kernel give "
                "(H - kh + 1, W - kw + 1) positions, the last one with the kernel touching the border.",
                matches=size_off_by_one),
    ),
    hints=(
        "Allocate the output first: how many positions does a (kh, kw) window have in an (H, W) image?",
        "Loop over output positions (i, j); the window is X[i:i + kh, j:j + kw]. Multiply it elementwise "
        "with K and sum.",
        "Do not flip K: compare with F.conv2d(x[None, None], k[None, None])[0, 0] on a small example.",
    ),
    forbidden=CONVOLUTION,
    rtol=1e-4,
    atol=1e-5,
)


@test_case(points=points)
def test_corr2d(corr2d):
    QUESTION.assert_passes(corr2d)
