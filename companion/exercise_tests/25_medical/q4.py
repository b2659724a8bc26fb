"""Exercise 25, question 4: find the bug in a colleague's class weights, ``class_weights``.

The balanced weights are ``n / (C n_c)`` for ``n`` labels, ``C`` classes and ``n_c`` labels of
class ``c``: each class then carries the same total weight. The colleague wrote ``n_c / n``, the
classes' frequencies, which weighs the frequent class *more*. The reference is
``companion.losses.balanced_class_weights`` (equal to scikit-learn's
``compute_class_weight("balanced", ...)``, tested). Other known mistakes: ``C`` missing, ``1 / n_c``,
weights normalised to sum 1.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question
from companion.losses import balanced_class_weights

OK_FORMAT = False
name = "q4"
points = 3


def variant(kind):
    def weights(labels, num_classes):
        counts = torch.bincount(labels, minlength=num_classes).double()
        n = len(labels)
        if kind == "inverted":
            w = counts / n
        elif kind == "no C":
            w = n / counts
        elif kind == "reciprocal":
            w = 1 / counts
        elif kind == "sum to 1":
            w = (1 / counts) / (1 / counts).sum()
        else:
            raise ValueError(kind)
        return w.float()

    return weights


def cases(draw):
    found = []
    for counts in [(90, 10), (50, 30, 20), (5, 40, 7, 148), (12, 12, 1)]:
        labels = torch.cat([torch.full((c,), k, dtype=torch.int64) for k, c in enumerate(counts)])
        labels = labels[torch.randperm(len(labels), generator=draw.generator)]
        found.append(Case((labels, len(counts)), f"{len(counts)} classes with {list(counts)} labels"))
    return found


QUESTION = Question(
    name="q4",
    function="class_weights",
    points=points,
    reference=balanced_class_weights,
    oracle="companion.losses.balanced_class_weights (== scikit-learn's compute_class_weight('balanced'))",
    cases=cases,
    mistakes=(
        Mistake("still the colleague's bug: the weights are inverted. n_c / n is each class's frequency, so the "
                "frequent class weighs more and the rare one less; the balanced weight is n / (C n_c).",
                value=variant("inverted")),
        Mistake("the number of classes C is missing: n / n_c is C times the balanced weight n / (C n_c).",
                value=variant("no C")),
        Mistake("1 / n_c has the right ratios but not the scale: multiply by n / C, so that balanced classes "
                "get weights of 1.", value=variant("reciprocal")),
        Mistake("the weights are normalised to sum to 1: the ratios are right, but the balanced weights are "
                "n / (C n_c), whose mean over the examples is 1.", value=variant("sum to 1")),
    ),
    hints=(
        "torch.bincount(labels, minlength=num_classes) counts the labels of each class.",
        "A class with fewer examples must weigh more: is your weight of the rarest class the largest?",
        "Return a float tensor of shape (num_classes,).",
    ),
    forbidden=Forbidden(modules=("companion.losses", "sklearn.utils"),
                        names=("balanced_class_weights", "compute_class_weight"),
                        what="the balanced class weights"),
    rtol=1e-5,
    atol=1e-6,
)


@test_case(points=points)
def test_class_weights(class_weights):
    QUESTION.assert_passes(class_weights)
