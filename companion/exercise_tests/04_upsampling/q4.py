"""Exercise 4, question 4: predict, then measure, how many kernel taps each output of a transposed convolution gets.

The learner writes down, before running anything, the overlap pattern of a 1-D transposed
convolution with kernel 5 and stride 3 on 4 inputs (no padding): for each of the 14 output
positions, the number of kernel taps that land on it. Stamp ``i`` covers outputs ``3 i .. 3 i + 4``,
so interior positions alternate between 2 taps and 1 (5 is not a multiple of 3): the uneven
overlap behind the checkerboard artefacts of Odena, Dumoulin & Olah, *Deconvolution and
Checkerboard Artifacts*, Distill 2016 (https://distill.pub/2016/deconv-checkerboard/). The
reference measures it with torch: a transposed convolution of ones with a kernel of ones counts
the taps. An otter-grader exception-based test file that also defines ``QUESTION`` for
``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 2
N_IN, KERNEL, STRIDE = 4, 5, 3


def taps(n, k, s):
    """Kernel taps per output position, measured: (transposed convolution of ones with a kernel of ones)."""
    counts = F.conv_transpose1d(torch.ones(1, 1, n), torch.ones(1, 1, k), stride=s)[0, 0]  # ((n - 1) s + k,)
    return [int(c) for c in counts.tolist()]


def measured():
    return taps(N_IN, KERNEL, STRIDE)


def cases(draw):
    return [Case((), "F.conv_transpose1d with kernel 5 and stride 3 on 4 inputs, no padding")]


def predict(function):
    """How the learner's answer is called: it takes no arguments; a list, tuple or 1-D tensor of counts."""
    answer = function()
    if isinstance(answer, torch.Tensor):
        answer = answer.tolist()
    if isinstance(answer, (list, tuple)) and all(isinstance(a, (int, float)) and not isinstance(a, bool)
                                                 for a in answer):
        return [int(a) if float(a).is_integer() else float(a) for a in answer]
    raise TypeError("predicted_taps must return a list of numbers, one count per output position")


def same_length_as(other):
    def matches(got, expected, args):
        return isinstance(got, list) and len(got) == len(other) and got == other
    return matches


def wrong_length(got, expected, args):
    return isinstance(got, list) and len(got) != len(expected)


def even_overlap(got, expected, args):
    """Every output position given the same count (e.g. k / s rounded), or a flat interior with ramps at the ends."""
    if not isinstance(got, list) or len(got) != len(expected):
        return False
    inner = got[STRIDE:-STRIDE]
    return len(set(inner)) == 1


QUESTION = Question(
    name="q4",
    function="predicted_taps",
    points=points,
    reference=measured,
    oracle="F.conv_transpose1d of ones with a kernel of ones (each output counts the taps that land on it)",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("the stride is ignored: with stride 1 the stamps would be 1 apart and overlap up to 5 deep, but "
                "here stamp i starts at 3 * i.", matches=same_length_as(taps(N_IN, KERNEL, 1))),
        Mistake("the length is wrong: the last stamp starts at (4 - 1) * 3 = 9 and is 5 long, so there are "
                "(n - 1) * s + k outputs.", matches=wrong_length),
        Mistake("the overlap is not even: 5 is not a multiple of the stride 3, so interior positions do not all "
                "get the same number of taps. Write out which outputs stamps 0, 1, 2 and 3 cover.",
                matches=even_overlap),
    ),
    hints=(
        "Input i stamps the kernel (5 taps) onto outputs 3 * i, ..., 3 * i + 4.",
        "Draw the 4 stamps on a line of (4 - 1) * 3 + 5 positions and count, position by position, how many "
        "stamps cover it.",
        "Return a list of whole numbers, one per output position, from position 0 to the last.",
    ),
    rtol=0.0,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_taps(predicted_taps):
    QUESTION.assert_passes(predicted_taps)
