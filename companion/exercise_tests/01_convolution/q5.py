"""Exercise 1, question 5: im2col, ``im2col``.

The learner copies every k x k window of a (C, H, W) image into one column, rows in the order
(channel, kernel row, kernel column) and columns in reading order of the output positions, with a
stride and no padding. The reference is ``torch.nn.functional.unfold`` (PyTorch's im2col). Each
known mistake is the right matrix with its rows or columns in another order, or the stride ignored.
Chellapilla, Puri & Simard (2006), https://hal.inria.fr/inria-00112631.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q5"
points = 3


def torch_im2col(x, kernel_size, stride):
    return F.unfold(x[None], kernel_size, stride=stride)[0]  # (C, H, W) -> (1, C*k*k, L) -> (C*k*k, L)


def rows_kernel_first(x, k, s):
    """The rows in the order (kernel row, kernel column, channel): the column order bug."""
    c = x.shape[0]
    cols = torch_im2col(x, k, s)  # (C*k*k, L)
    return cols.reshape(c, k * k, -1).transpose(0, 1).reshape(c * k * k, -1)  # (k*k, C, L) -> (k*k*C, L)


def columns_transposed(x, k, s):
    """The output positions in column-major order (j first, then i)."""
    c, h, w = x.shape
    out_h, out_w = (h - k) // s + 1, (w - k) // s + 1
    cols = torch_im2col(x, k, s).reshape(-1, out_h, out_w)  # (C*k*k, H', W')
    if out_h == out_w == 1:
        return None
    return cols.transpose(1, 2).reshape(c * k * k, -1)  # (C*k*k, W', H') -> (C*k*k, L)


def window_transposed(x, k, s):
    """Each window read column by column: kernel position (u, v) stored at (v, u)."""
    c = x.shape[0]
    if k == 1:
        return None
    cols = torch_im2col(x, k, s).reshape(c, k, k, -1)  # (C, k, k, L)
    return cols.transpose(1, 2).reshape(c * k * k, -1)


SETTINGS = [(1, 2, 1), (2, 3, 1), (3, 2, 2), (2, 3, 2), (1, 3, 3), (3, 1, 1), (2, 2, 1)]  # (C, k, stride)


def cases(draw):
    found = []
    for c, k, s in SETTINGS:
        h, w = draw.int(k + 1, 7), draw.int(k + 2, 8)
        found.append(Case((draw.normal(c, h, w), k, s), f"x of shape ({c}, {h}, {w}), kernel_size={k}, stride={s}"))
    return found


QUESTION = Question(
    name="q5",
    function="im2col",
    points=points,
    reference=torch_im2col,
    oracle="torch.nn.functional.unfold",
    cases=cases,
    mistakes=(
        Mistake("the rows are in the order (kernel position, channel): a column must list channel 0's whole "
                "k x k window first, then channel 1's, the order of weight.reshape(C_out, -1) for a weight of "
                "shape (C_out, C, k, k). Otherwise the matrix product pairs weights with the wrong pixels.",
                value=rows_kernel_first),
        Mistake("the columns are in column-major order: output position (i, j) is column i * W' + j (reading "
                "order, row by row), so that the product reshapes to (C_out, H', W').",
                value=columns_transposed),
        Mistake("each window is read column by column: within a channel, the row for kernel position (u, v) "
                "is u * k + v (u down the rows, v along the columns).", value=window_transposed),
        Mistake("the stride is ignored: window (i, j) starts at row i * stride and column j * stride, and there "
                "are (H - k) // stride + 1 rows of windows.",
                value=lambda x, k, s: torch_im2col(x, k, 1) if s > 1 else None),
    ),
    hints=(
        "The result has C * k * k rows and H' * W' columns, with H' = (H - k) // stride + 1.",
        "For output position (i, j), the window is x[:, i*stride : i*stride + k, j*stride : j*stride + k], of "
        "shape (C, k, k); flatten it in that order into column i * W' + j.",
        "Check your result against F.unfold(x[None], k, stride=stride)[0] on a small numbered input, e.g. "
        "torch.arange(18.).view(2, 3, 3).",
    ),
    forbidden=Forbidden(ops=("aten.im2col", "aten.col2im"), modules=("companion.conv", "companion.backward"),
                        names=("Unfold", "im2col"), what="im2col"),
)


@test_case(points=points)
def test_im2col(im2col):
    QUESTION.assert_passes(im2col)
