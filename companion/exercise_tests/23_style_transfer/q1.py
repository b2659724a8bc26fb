"""Exercise 23, question 1: predict, then verify, the Gram matrix of a tiny feature map, ``predicted_gram``.

The feature map has one image, two channels of 2 x 2: channel 0 is ``[[1, 0], [0, 1]]``, channel
1 is ``[[1, 1], [0, 0]]``. The learner writes down its normalised Gram matrix, shape and values,
before computing it: the inner products are 2, 1 and 2, divided by ``C * H * W = 8``, so
``[[[0.25, 0.125], [0.125, 0.25]]]``, shape ``(1, 2, 2)``. The reference is
``companion.style.gram_matrix`` (Gatys et al., 2016). The usual wrong predictions are known
mistakes: not normalised, divided by ``H * W`` only, no batch dimension, the positions' Gram
``F^T F`` (4 x 4).
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question
from companion.style import gram_matrix

OK_FORMAT = False
name = "q1"
points = 2

HAND = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]]]], dtype=torch.float64)  # (1, 2, 2, 2)


def measured():
    return gram_matrix(HAND)


def as_tensor(function):
    """How the learner's answer is called: no arguments; its value as a float64 tensor."""
    return torch.as_tensor(function(), dtype=torch.float64)


def _shape(got, expected, args, shape):
    return tuple(torch.as_tensor(got).shape) == shape


QUESTION = Question(
    name="q1",
    function="predicted_gram",
    points=points,
    reference=measured,
    oracle="companion.style.gram_matrix on the feature map",
    cases=lambda draw: [Case((), "the (1, 2, 2, 2) feature map of the question")],
    call=as_tensor,
    mistakes=(
        Mistake("not normalised: these are the inner products themselves (2, 1, 2); the course's Gram matrix "
                "divides them by C * H * W = 2 * 2 * 2 = 8.",
                value=lambda: gram_matrix(HAND) * 8),
        Mistake("divided by H * W = 4 only; the normalisation is by C * H * W = 8, the number of values in "
                "the feature map.", value=lambda: gram_matrix(HAND) * 2),
        Mistake("the batch dimension is missing: a feature map (N, C, H, W) gives one Gram matrix per image, "
                "(N, C, C), here (1, 2, 2).",
                matches=lambda got, expected, args: _shape(got, expected, args, (2, 2))),
        Mistake("this is a Gram matrix of the positions (F^T F, 4 x 4); style compares *channels*, so it is "
                "F F^T, C x C.", matches=lambda got, expected, args: _shape(got, expected, args, (1, 4, 4))),
    ),
    hints=(
        "Flatten each channel into a row of H * W = 4 values: F has 2 rows of 4.",
        "G[i, j] is the sum over the 4 positions of F[i, p] * F[j, p], divided by C * H * W.",
        "Return a tensor of shape (N, C, C) = (1, 2, 2).",
    ),
)


@test_case(points=points)
def test_predicted_gram(predicted_gram):
    QUESTION.assert_passes(predicted_gram)
