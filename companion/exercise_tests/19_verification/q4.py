"""Exercise 19, question 4 (predict, then verify): the AUC by counting, ``auc_by_counting``.

The area under the ROC curve is the probability that a random same-identity pair scores higher
than a random different-identity pair, a tie counting one half (the Mann-Whitney statistic). The
learner first predicts the AUC of a small example by hand, then writes it by counting the
(same, different) pairs of a batch of scores. The reference is scikit-learn's ``roc_auc_score``;
the scores of the cases have many ties, where the known mistakes (ties as wins or as losses, the
wrong number of pairs, the scores' sign) show. An otter-grader exception-based test file that also
defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case
from sklearn.metrics import roc_auc_score

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 2


def counted(scores, same, *, tie=0.5, pairs="same x different", sign=1.0):
    """The AUC by counting, right with the defaults, or with one thing changed."""
    scores = sign * scores
    pos, neg = scores[same.bool()], scores[~same.bool()]
    wins = (pos[:, None] > neg[None, :]).double() + tie * (pos[:, None] == neg[None, :]).double()
    if pairs == "all":  # divided by all N^2 ordered pairs of scores
        return float(wins.sum() / len(scores) ** 2)
    return float(wins.mean())


def reference(scores, same):
    return float(roc_auc_score(same.numpy(), scores.numpy()))


def variant(**changes):
    return lambda scores, same: counted(scores, same, **changes)


def cases(draw):
    found = [Case((torch.tensor([0.9, 0.8, 0.8, 0.3, 0.2], dtype=torch.float64),
                   torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64)),
                  "the notebook's example: scores [0.9, 0.8, 0.8, 0.3, 0.2], same [1, 1, 0, 1, 0]")]
    for n in (8, 15, 40, 100):
        same = (torch.rand(n, generator=draw.generator, dtype=torch.float64) < 0.4).double()
        same[0], same[1] = 1.0, 0.0
        scores = torch.round(2 * (torch.randn(n, generator=draw.generator, dtype=torch.float64) + same)) / 2  # ties
        found.append(Case((scores, same), f"{n} pairs with tied scores"))
    return found


QUESTION = Question(
    name="q4",
    function="auc_by_counting",
    points=points,
    reference=reference,
    oracle="sklearn.metrics.roc_auc_score",
    cases=cases,
    mistakes=(
        Mistake("a tie counts as a win: a same pair that scores exactly as a different pair is a coin toss, "
                "and counts 1/2.", value=variant(tie=1.0)),
        Mistake("a tie counts as a loss: a same pair that scores exactly as a different pair counts 1/2.",
                value=variant(tie=0.0)),
        Mistake("the count is divided by the number of all pairs of scores: divide by (number of same pairs) x "
                "(number of different pairs), the comparisons that were made.", value=variant(pairs="all")),
        Mistake("the order is reversed: a higher score means more likely the same identity, so a same pair "
                "wins when its score is the higher one.", value=variant(sign=-1.0)),
    ),
    hints=(
        "List the same pairs' scores and the different pairs' scores; how many (same, different) combinations "
        "are there?",
        "For each combination: 1 if the same pair scores higher, 1/2 if they tie, 0 otherwise.",
        "Broadcasting compares every same score with every different score at once: pos[:, None] > neg[None, :].",
    ),
    forbidden=Forbidden(modules=("companion.verification", "sklearn"),
                        names=("roc_auc_score", "roc_curve", "roc_auc", "auc", "trapezoid", "trapz"),
                        what="the AUC"),
    rtol=0.0,
    atol=1e-12,
)


@test_case(points=points)
def test_auc_by_counting(auc_by_counting):
    QUESTION.assert_passes(auc_by_counting)
