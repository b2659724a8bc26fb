"""Exercise 25, question 1: predict, then verify, the balanced class weights of given counts, ``predicted_weights``.

A training set holds 900 healthy slices (class 0) and 100 with a lesion (class 1). The balanced
weights are ``n / (C n_c)``: ``1000 / (2 * 900) = 0.556`` and ``1000 / (2 * 100) = 5.0``. The
reference is ``companion.losses.balanced_class_weights`` (equal to scikit-learn's
``compute_class_weight("balanced", ...)``, tested); the usual wrong predictions are known mistakes.
King and Zeng (2001), https://doi.org/10.1093/oxfordjournals.pan.a004868.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question
from companion.losses import balanced_class_weights

OK_FORMAT = False
name = "q1"
points = 2


def measured():
    labels = torch.cat([torch.zeros(900, dtype=torch.int64), torch.ones(100, dtype=torch.int64)])
    return tuple(float(w) for w in balanced_class_weights(labels, 2))


def cases(draw):
    return [Case((), "900 healthy slices (class 0), 100 with a lesion (class 1)")]


def predict(function):
    """How the learner's answer is called: it takes no arguments."""
    return function()


QUESTION = Question(
    name="q1",
    function="predicted_weights",
    points=points,
    reference=measured,
    oracle="companion.losses.balanced_class_weights (== scikit-learn's compute_class_weight('balanced'))",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("the weights are inverted: n_c / n gives the frequent class the larger weight (0.9 for the "
                "healthy), which makes the imbalance worse. Divide the other way: n / (C n_c).",
                value=lambda: (0.9, 0.1)),
        Mistake("the number of classes C is missing: n / n_c gives 1.11 and 10, twice the balanced weights. "
                "With n / (C n_c) each class carries the total weight n / C.", value=lambda: (1000 / 900, 10.0)),
        Mistake("1 / n_c has the right ratio but not the scale: the balanced weights are n / (C n_c), so that "
                "a balanced set gets weights of 1.", value=lambda: (1 / 900, 1 / 100)),
        Mistake("the weights are normalised to sum to 1 (0.1 and 0.9): the ratio is right, but the balanced "
                "weights are n / (C n_c), which average 1 over the examples.", value=lambda: (0.1, 0.9)),
        Mistake("the two weights are in the wrong order: element 0 is class 0's, the healthy slices'.",
                value=lambda: (5.0, 1000 / 1800)),
    ),
    hints=(
        "n is the number of examples, C the number of classes, n_c the examples of class c.",
        "The rare class must weigh more: which of the two weights is larger?",
        "Return a tuple of two floats: (weight of class 0, weight of class 1).",
    ),
    rtol=0.01,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_weights(predicted_weights):
    QUESTION.assert_passes(predicted_weights)
