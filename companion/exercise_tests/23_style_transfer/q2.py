"""Exercise 23, question 2: predict, then verify, how a Gram matrix scales with the image size, ``predicted_growth``.

A feature map ``(1, C, H, W)`` is enlarged 3 times each way, each value repeated in a 3 x 3 block
(``F.interpolate(f, scale_factor=3, mode="nearest")``): the same pattern on 9 times the area.
The learner predicts by what factor the *unnormalised* Gram matrix ``F F^T`` grows, and by what
factor the normalised one (divided by ``C * H * W``, ``companion.style.gram_matrix``) grows,
as a pair ``(9.0, 1.0)``. The reference measures both on a random map. The usual wrong
predictions: 3 (the side, not the area), 81 (the area squared), and 9 for both.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question
from companion.style import gram_matrix

OK_FORMAT = False
name = "q2"
points = 2


def measured():
    f = torch.rand(1, 4, 5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.1
    big = F.interpolate(f, scale_factor=3, mode="nearest")  # (1, 4, 15, 18)

    def raw(x):
        flat = x.flatten(2)
        return flat @ flat.transpose(1, 2)

    return (round(float((raw(big) / raw(f)).mean()), 6),
            round(float((gram_matrix(big) / gram_matrix(f)).mean()), 6))


def as_pair(function):
    """How the learner's answer is called: no arguments; a pair of floats."""
    unnormalised, normalised = function()
    return (float(unnormalised), float(normalised))


QUESTION = Question(
    name="q2",
    function="predicted_growth",
    points=points,
    reference=measured,
    oracle="the two Gram matrices measured on a random map and its 3x enlargement",
    cases=lambda draw: [Case((), "a (1, 4, 5, 6) feature map enlarged to (1, 4, 15, 18)")],
    call=as_pair,
    mistakes=(
        Mistake("3 is how much the side grows; the Gram matrix sums over all positions, and there are 3 * 3 = 9 "
                "times as many, each with the same values.",
                matches=lambda got, expected, args: got[0] == 3.0),
        Mistake("81 squares the growth: each entry F[i, p] * F[j, p] is unchanged, there are just 9 times as many "
                "positions to sum over.", matches=lambda got, expected, args: got[0] == 81.0),
        Mistake("the normalised Gram matrix divides by C * H * W, which grows 9 times too: it does not change. "
                "That is why it is used: no layer dominates the style loss just because it has more positions.",
                matches=lambda got, expected, args: got[0] == 9.0 and got[1] != 1.0),
    ),
    hints=(
        "Write one entry of F F^T as a sum over positions p. What happens to each term, and to the number of terms?",
        "The normalised matrix divides by C * H * W. How does that grow?",
        "Return two floats: (growth of F F^T, growth of F F^T / (C H W)).",
    ),
    rtol=0.0,
    atol=1e-6,
)


@test_case(points=points)
def test_predicted_growth(predicted_growth):
    QUESTION.assert_passes(predicted_growth)
