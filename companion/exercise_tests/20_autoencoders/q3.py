"""Exercise 20, question 3: find the bug in a retrieval benchmark's precision@k, ``precision_at_k``.

Every image of a set is a query that searches all the *other* images by Euclidean distance between
codes; precision@k is the fraction of the k nearest that share the query's label, averaged over the
queries (Manning, Raghavan & Schütze, *Introduction to Information Retrieval*, 2008, section 8.4).
The notebook gives an implementation that counts each query as its own nearest neighbour (at
distance 0, always relevant), the benchmark's typical bug. The reference is scikit-learn's
``NearestNeighbors.kneighbors()`` of the set itself (which leaves each point out of its own
results), then the fraction of matching labels. Cases are random float64 codes, so that no two
distances tie. An otter-grader exception-based test file that also defines ``QUESTION`` for
``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case
from sklearn.neighbors import NearestNeighbors

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 3


def reference(codes, labels, k):
    _, nearest = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(codes.numpy()).kneighbors()
    relevant = labels[torch.from_numpy(nearest)] == labels[:, None]  # (N, k)
    return float(relevant.double().mean())


def variant(*, leave_out=True, metric="euclidean", results="k", average="mean"):
    """Leave-one-out precision@k, right with the defaults, or with one thing changed."""

    def value(codes, labels, k):
        if results == "k - 1" and k == 1:
            return None  # no result left to score: the mistake cannot show as a number
        if metric == "cosine":
            unit = F.normalize(codes, dim=1)
            d = 1 - unit @ unit.T  # (N, N)
        else:
            d = torch.cdist(codes, codes)  # (N, N)
        if leave_out:
            d = d.masked_fill(torch.eye(len(codes), dtype=torch.bool), float("inf"))
        nearest = d.topk(k, dim=1, largest=False).indices  # (N, k)
        if results == "k - 1":
            nearest = nearest[:, 1:]
        relevant = (labels[nearest] == labels[:, None]).double()  # (N, k)
        if average == "k + 1":
            return float(((relevant.sum(1) + 1) / (k + 1)).mean())
        return float(relevant.mean())

    return value


def cases(draw):
    found = []
    for n, d, classes, k in [(12, 2, 3, 1), (30, 4, 3, 5), (25, 8, 5, 3), (40, 3, 4, 10), (18, 16, 2, 4),
                             (50, 5, 10, 2)]:
        labels = torch.randint(0, classes, (n,), generator=draw.generator)
        # codes: a class centre plus noise, so that neighbours often share the label
        centres = draw.normal(classes, d, scale=2.0)
        codes = centres[labels] + draw.normal(n, d)
        found.append(Case((codes, labels, k), f"{n} codes of dimension {d}, {classes} labels, k={k}"))
    return found


QUESTION = Question(
    name="q3",
    function="precision_at_k",
    points=points,
    reference=reference,
    oracle="scikit-learn's NearestNeighbors().kneighbors() of the set (each point left out), then the label match",
    cases=cases,
    mistakes=(
        Mistake("this is still the colleague's bug: each query is its own nearest neighbour (distance 0, and "
                "always relevant), which inflates precision@k (P@1 is then always 1). Leave the query out of its "
                "own results, e.g. set the diagonal of the distance matrix to infinity.",
                value=variant(leave_out=False)),
        Mistake("only k - 1 results are scored: dropping the first column of the k nearest removes the query "
                "but also loses the k-th neighbour. Leave the query out before taking the k nearest.",
                value=variant(leave_out=False, results="k - 1")),
        Mistake("the query is counted as a relevant result out of k + 1: precision@k scores the k nearest "
                "other images, out of k.", value=variant(average="k + 1")),
        Mistake("these are cosine distances: the question asks for Euclidean distances between the codes.",
                value=variant(metric="cosine")),
    ),
    hints=(
        "What is the distance of a query to itself, and where does that put it among its results?",
        "Before taking the k smallest distances of each row, make each row's own entry the largest.",
        "Check your answer on k = 1: can the precision be 1 on random labels?",
    ),
    forbidden=Forbidden(modules=("companion.autoencoder", "sklearn.neighbors"),
                        names=("NearestNeighbors", "EmbeddingIndex", "retrieval_precision"),
                        what="the leave-one-out precision@k"),
    rtol=1e-9,
    atol=1e-12,
)


@test_case(points=points)
def test_precision_at_k(precision_at_k):
    QUESTION.assert_passes(precision_at_k)
