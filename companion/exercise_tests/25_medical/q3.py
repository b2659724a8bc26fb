"""Exercise 25, question 3: find the bug in a colleague's sensitivity and specificity, ``sensitivity_specificity``.

With the lesion as the positive class (label 1), the sensitivity is the recall of class 1,
``TP / (TP + FN)``, and the specificity the recall of class 0, ``TN / (TN + FP)``. The colleague
counted class 0 as the positive one, so their "sensitivity" is the recall of the healthy. The
reference is ``companion.medical.binary_metrics`` (equal to scikit-learn's ``recall_score``,
tested); the other known mistakes are the precision for the sensitivity and the accuracy.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question
from companion.medical import binary_metrics

OK_FORMAT = False
name = "q3"
points = 3


def reference(predicted, target):
    scores = binary_metrics(predicted, target)
    return (scores["sensitivity"], scores["specificity"])


def _counts(predicted, target):
    tp = int(((predicted == 1) & (target == 1)).sum())
    tn = int(((predicted == 0) & (target == 0)).sum())
    fp = int(((predicted == 1) & (target == 0)).sum())
    fn = int(((predicted == 0) & (target == 1)).sum())
    return tp, tn, fp, fn


def variant(kind):
    def scores(predicted, target):
        tp, tn, fp, fn = _counts(predicted, target)
        sensitivity, specificity = tp / (tp + fn), tn / (tn + fp)
        if kind == "swapped":
            return (specificity, sensitivity)
        if kind == "precision":
            return (tp / (tp + fp) if tp + fp else 0.0, specificity)
        if kind == "accuracy":
            return ((tp + tn) / len(target), specificity)
        if kind == "columns":  # divided by the predicted counts: precision and negative predictive value
            return (tp / (tp + fp) if tp + fp else 0.0, tn / (tn + fn) if tn + fn else 0.0)
        raise ValueError(kind)

    return scores


def cases(draw):
    found = []
    for n, share, error in [(50, 0.1, 0.2), (200, 0.05, 0.3), (80, 0.3, 0.1), (120, 0.2, 0.4)]:
        target = (torch.rand(n, generator=draw.generator) < share).long()
        target[:2] = torch.tensor([1, 0])  # both classes present
        flip = torch.rand(n, generator=draw.generator) < error
        predicted = torch.where(flip, 1 - target, target)
        predicted[2] = 1 - target[2]
        found.append(Case((predicted, target), f"{n} slices, {int(target.sum())} with a lesion"))
    return found


QUESTION = Question(
    name="q3",
    function="sensitivity_specificity",
    points=points,
    reference=reference,
    oracle="companion.medical.binary_metrics (== scikit-learn's recall_score for each class)",
    cases=cases,
    mistakes=(
        Mistake("still the colleague's bug: the recall is computed on the wrong class. The lesion, label 1, "
                "is the positive class: the sensitivity is TP / (TP + FN), the share of lesions found, and the "
                "specificity TN / (TN + FP), the share of healthy slices called healthy.",
                value=variant("swapped")),
        Mistake("this is the precision, TP / (TP + FP), divided by the slices *called* lesion: the "
                "sensitivity divides by the slices that *are* lesions, TP / (TP + FN).",
                value=variant("precision")),
        Mistake("both numbers are divided by the predicted counts (the confusion matrix's columns): a recall "
                "divides by the true counts, its rows: TP / (TP + FN) and TN / (TN + FP).",
                value=variant("columns")),
        Mistake("this is the accuracy, (TP + TN) / n: the sensitivity counts the lesions only, TP / (TP + FN).",
                value=variant("accuracy")),
    ),
    hints=(
        "Count TP, FN, TN and FP with boolean masks: (predicted == 1) & (target == 1) is a true positive.",
        "Which label is the disease? The sensitivity is the share of *those* that are found.",
        "Return a tuple of two Python floats: (sensitivity, specificity).",
    ),
    forbidden=Forbidden(modules=("companion.medical", "sklearn.metrics"),
                        names=("binary_metrics", "recall_score", "balanced_accuracy_score"),
                        what="the sensitivity and the specificity"),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_sensitivity_specificity(sensitivity_specificity):
    QUESTION.assert_passes(sensitivity_specificity)
