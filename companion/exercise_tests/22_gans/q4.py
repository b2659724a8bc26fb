"""Exercise 22, question 4: the ROC AUC of anomaly scores by counting pairs, ``anomaly_auc``.

An anomaly detector trained on normal images only (AnoGAN: Schlegl et al., *Unsupervised Anomaly
Detection with Generative Adversarial Networks to Guide Marker Discovery*, IPMI 2017,
https://arxiv.org/abs/1703.05921) gives every test image a score, higher meaning more anomalous.
The area under the ROC curve equals the probability that a random anomaly scores higher than a
random normal image, ties counting one half (the Mann-Whitney U statistic divided by the number of
pairs; Hanley & McNeil, *Radiology* 143(1), 1982). The reference is scikit-learn's
``roc_auc_score`` with the anomalies as the positive class; cases with integer scores have many
ties. An otter-grader exception-based test file that also defines ``QUESTION`` for
``companion.grade``.
"""

import torch
from otter.test_files import test_case
from sklearn.metrics import roc_auc_score

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 2


def reference(normal, anomalous):
    labels = [0] * len(normal) + [1] * len(anomalous)
    return float(roc_auc_score(labels, torch.cat([normal, anomalous]).numpy()))


def pairs(normal, anomalous, tie):
    above = (anomalous[:, None] > normal[None, :]).double().sum()
    ties = (anomalous[:, None] == normal[None, :]).double().sum()
    return float((above + tie * ties) / (len(normal) * len(anomalous)))


def has_ties(normal, anomalous):
    return bool((anomalous[:, None] == normal[None, :]).any())


def only_with_ties(value):
    return lambda normal, anomalous: value(normal, anomalous) if has_ties(normal, anomalous) else None


def cases(draw):
    found = []
    for n, m, kind in [(5, 4, "float"), (12, 9, "int"), (1, 6, "int"), (20, 20, "float"), (7, 3, "int")]:
        if kind == "int":
            normal = torch.randint(0, 5, (n,), generator=draw.generator).double()
            anomalous = torch.randint(2, 8, (m,), generator=draw.generator).double()
        else:
            normal, anomalous = draw.normal(n), 0.8 + draw.normal(m)
        found.append(Case((normal, anomalous), f"{n} normal and {m} anomalous scores"
                                               + (" (integers: many ties)" if kind == "int" else "")))
    return found


QUESTION = Question(
    name="q4",
    function="anomaly_auc",
    points=points,
    reference=reference,
    oracle="sklearn.metrics.roc_auc_score with the anomalies as the positive class",
    cases=cases,
    mistakes=(
        Mistake("ties are not counted: a pair of a normal and an anomalous image with equal scores counts "
                "one half (the detector cannot tell them apart, as if it guessed).",
                value=only_with_ties(lambda x, y: pairs(x, y, 0.0))),
        Mistake("ties count as a whole pair ranked right: a pair with equal scores counts one half.",
                value=only_with_ties(lambda x, y: pairs(x, y, 1.0))),
        Mistake("the classes are the wrong way round (you return 1 - AUC): the positive class is the "
                "anomalies, and a higher score means more anomalous.",
                value=lambda x, y: 1 - reference(x, y)),
    ),
    hints=(
        "Count, over all (normal, anomalous) pairs, how often the anomaly has the higher score. "
        "Divide by the number of pairs.",
        "A (N,) and an (M,) tensor compared with broadcasting give an (M, N) table of all pairs.",
        "What should a pair with equal scores count for, if the detector were guessing?",
    ),
    forbidden=Forbidden(modules=("companion.gan", "companion.verification", "sklearn.metrics"),
                        names=("roc_auc_score", "roc_curve"),
                        what="the AUC"),
    rtol=1e-9,
    atol=1e-12,
)


@test_case(points=points)
def test_anomaly_auc(anomaly_auc):
    QUESTION.assert_passes(anomaly_auc)
