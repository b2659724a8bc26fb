"""Exercise 27, question 2: predict, then verify, the 95th percentile of a list of latencies, ``predicted_p95``.

Of 21 request latencies (milliseconds), two are slow (48 and 95 ms). With 21 values, the 95th
percentile sits at position 0.95 x 20 = 19 of the sorted list (counted from 0): the second
largest, 48 ms, for both NumPy's default (linear interpolation) and the nearest-rank definition.
The reference is ``numpy.percentile``, as ``companion.serve.Timing.p95_ms`` uses.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import numpy as np
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 2

LATENCIES_MS = (12.1, 9.8, 11.0, 10.4, 48.0, 10.2, 9.9, 13.5, 11.2, 10.0, 12.4, 9.7, 10.6, 11.8, 95.0, 10.1,
                12.0, 11.5, 9.6, 10.3, 14.2)


def measured():
    return float(np.percentile(LATENCIES_MS, 95))


def cases(draw):
    return [Case((), "the 21 latencies of the question")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


QUESTION = Question(
    name="q2",
    function="predicted_p95",
    points=points,
    reference=measured,
    oracle="numpy.percentile(latencies, 95)",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("95.0 is the slowest request, the maximum (p100): p95 is the time that 95% of the requests beat, "
                "at position 19 of the 21 sorted values (counted from 0).", value=lambda: 95.0),
        Mistake("this is the mean: the two slow requests pull it up, yet it describes no request; p95 is a "
                "position in the sorted list.", value=lambda: float(np.mean(LATENCIES_MS))),
        Mistake("this is the median (p50), position 10 of the sorted list: p95 is much further along.",
                value=lambda: 11.0),
        Mistake("a percentile is read from the *sorted* latencies: position 19 of the list as recorded is just "
                "the 20th request.", value=lambda: LATENCIES_MS[19]),
        Mistake("sorted from the slowest down, position 19 is the second fastest (p5): sort in increasing order.",
                value=lambda: sorted(LATENCIES_MS)[1]),
    ),
    hints=(
        "Sort the 21 latencies from fastest to slowest.",
        "p95 is at position 0.95 x (n - 1) of the sorted list, counting from 0.",
        "Return one Python float, in milliseconds.",
    ),
    rtol=0.0,
    atol=1e-6,
)


@test_case(points=points)
def test_predicted_p95(predicted_p95):
    QUESTION.assert_passes(predicted_p95)
