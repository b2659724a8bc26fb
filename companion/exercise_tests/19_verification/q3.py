"""Exercise 19, question 3: find the bug in a verification protocol, ``test_accuracy``.

The notebook gives a function that reports the verification accuracy on test pairs with the
threshold that scores best *on those test pairs*: the threshold has seen the answers it is judged
on, so the number is optimistic (the LFW protocol of Huang et al. 2007 chooses it on other folds).
The learner chooses the threshold on the validation pairs (candidates: the validation distances
themselves, rule "same when d <= t", the smallest of equally good candidates) and returns the
accuracy of that threshold on the test pairs. The reference is written in torch; the known
mistakes are the given code and the other ways to let the test pairs in or to return the wrong
accuracy. An otter-grader exception-based test file that also defines ``QUESTION`` for
``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 2


def accuracy(d, same, t, *, reverse=False):
    said_same = d >= t if reverse else d <= t
    return float((said_same == same.bool()).double().mean())


def protocol(val_d, val_same, test_d, test_same, *, choose_on="val", report_on="test", reverse=False):
    """Right with the defaults, or with one thing changed."""
    pools = {"val": (val_d, val_same), "test": (test_d, test_same),
             "both": (torch.cat([val_d, test_d]), torch.cat([val_same, test_same]))}
    d, same = pools[choose_on]
    candidates = torch.sort(d).values
    scores = torch.tensor([accuracy(d, same, t, reverse=reverse) for t in candidates])
    t = candidates[int(torch.argmax(scores))]  # the first of equal maxima: the smallest
    d, same = pools[report_on]
    return accuracy(d, same, t, reverse=reverse)


def reference(val_d, val_same, test_d, test_same):
    return protocol(val_d, val_same, test_d, test_same)


def variant(**changes):
    return lambda val_d, val_same, test_d, test_same: protocol(val_d, val_same, test_d, test_same, **changes)


def cases(draw):
    found = []
    for n_val, n_test, gap in [(40, 30, 0.3), (60, 25, 0.2), (30, 50, 0.4), (80, 40, 0.25), (25, 25, 0.3)]:
        sides = []
        for n in (n_val, n_test):
            same = (torch.rand(n, generator=draw.generator, dtype=torch.float64) < 0.5).double()
            same[0], same[1] = 1.0, 0.0
            d = torch.rand(n, generator=draw.generator, dtype=torch.float64) + gap * (1 - same)
            sides += [d, same]
        found.append(Case(tuple(sides), f"{n_val} validation pairs and {n_test} test pairs"))
    return found


QUESTION = Question(
    name="q3",
    function="test_accuracy",
    points=points,
    reference=reference,
    oracle="the threshold chosen on the validation pairs, its accuracy measured on the test pairs",
    cases=cases,
    mistakes=(
        Mistake("the threshold is still chosen on the test pairs (the bug of the given code): choose it on the "
                "validation pairs, then measure it once on the test pairs.", value=variant(choose_on="test")),
        Mistake("the threshold is chosen on the validation and test pairs together: the test pairs must not "
                "influence it at all.", value=variant(choose_on="both")),
        Mistake("this is the accuracy on the validation pairs: the threshold is chosen there, but the function "
                "reports its accuracy on the test pairs.", value=variant(report_on="val")),
        Mistake("the rule is reversed: a pair is called the same identity when its distance is at most the "
                "threshold (d <= t).", value=variant(reverse=True)),
    ),
    hints=(
        "Which pairs does the given code look at to choose its threshold, and which to report the accuracy?",
        "Two steps: a threshold from (val_distances, val_same) only; then one accuracy on (test_distances, "
        "test_same).",
        "Among equally accurate candidates keep the smallest: torch.argmax returns the first of equal maxima.",
    ),
    forbidden=Forbidden(modules=("companion.verification", "sklearn"),
                        names=("best_threshold", "verification_accuracy", "roc_curve"),
                        what="the verification protocol"),
    rtol=0.0,
    atol=1e-12,
)


@test_case(points=points)
def test_test_accuracy(test_accuracy):
    QUESTION.assert_passes(test_accuracy)
