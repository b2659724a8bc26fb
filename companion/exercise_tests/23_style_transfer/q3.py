"""Exercise 23, question 3: the normalised Gram matrix from scratch, ``gram_matrix``.

``(N, C, H, W) -> (N, C, C)``, ``F F^T / (C H W)`` with ``F`` the map reshaped to
``(N, C, H*W)`` (Gatys et al., 2016, equation 3, with the course's normalisation). The
reference is ``torch.einsum("nchw,ndhw->ncd", f, f) / (C H W)``. The known mistakes: not
normalised, divided by ``H * W`` only, the features reshaped to ``(N, H*W, C)`` (which
scrambles the channels with the positions) before ``F^T F``, and the positions' Gram ``F^T F``.
Calling ``companion.style.gram_matrix`` scores 0. The cases are random float64 maps of several
shapes, non-square ones included.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 3


def reference(f):
    n, c, h, w = f.shape
    return torch.einsum("nchw,ndhw->ncd", f, f) / (c * h * w)


def scrambled(f):
    n, c, h, w = f.shape
    flat = f.reshape(n, h * w, c)  # not a transpose: channels and positions mixed up
    return flat.transpose(1, 2) @ flat / (c * h * w)


def cases(draw):
    found = []
    for n, c, h, w in [(1, 3, 4, 5), (2, 4, 3, 3), (3, 2, 6, 2), (1, 6, 5, 7)]:
        found.append(Case((draw.normal(n, c, h, w),), f"a random feature map of shape ({n}, {c}, {h}, {w})"))
    return found


QUESTION = Question(
    name="q3",
    function="gram_matrix",
    points=points,
    reference=reference,
    oracle='torch.einsum("nchw,ndhw->ncd", f, f) / (C * H * W)',
    cases=cases,
    mistakes=(
        Mistake("not normalised: divide F F^T by C * H * W, or a layer with more positions gets a larger Gram "
                "matrix and dominates the style loss.", value=lambda f: reference(f) * f[0].numel()),
        Mistake("divided by H * W only; the course's Gram matrix divides by C * H * W.",
                value=lambda f: reference(f) * f.shape[1]),
        Mistake("the features were reshaped to (N, H*W, C) directly: reshape keeps the memory order, so each "
                "'channel' column mixes values of several channels. Reshape to (N, C, H*W) (or permute first), "
                "then multiply by the transpose.", value=scrambled),
        Mistake("this is the Gram matrix of the positions, F^T F of shape (N, H*W, H*W); style correlates the "
                "channels: F F^T, of shape (N, C, C).",
                matches=lambda got, expected, args: tuple(torch.as_tensor(got).shape)[1:]
                == (args[0].shape[2] * args[0].shape[3],) * 2),
    ),
    hints=(
        "features.reshape(n, c, h * w) gives one row of H * W values per channel.",
        "A batched matrix product: (N, C, H*W) @ (N, H*W, C) -> (N, C, C).",
        "Check on a (1, 2, 2, 2) example by hand: the diagonal is each channel's sum of squares / (C H W).",
    ),
    forbidden=Forbidden(modules=("companion.style",), functions=("companion.style.gram_matrix",),
                        what="the Gram matrix"),
)


@test_case(points=points)
def test_gram_matrix(gram_matrix):
    QUESTION.assert_passes(gram_matrix)
