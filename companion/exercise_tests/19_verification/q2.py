"""Exercise 19, question 2: find the bug in batch-hard mining, ``fixed_batch_hard``.

The notebook gives a batch-hard triplet loss (Hermans, Beyer & Leibe, *In Defense of the Triplet
Loss for Person Re-Identification*, 2017, https://arxiv.org/abs/1703.07737) whose positive mask
keeps the diagonal: every anchor counts as its own positive. The farthest positive hides the bug
while an identity has several images in the batch, but an anchor that is the only image of its
identity then gets a positive (itself, at distance 0) and a term it should not have. The
reference is the companion's ``batch_hard_triplet_loss`` (tested against a loop over anchors);
the known mistakes are the given code and the other ways to mine the wrong pair. An otter-grader
exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question
from companion.losses import batch_hard_triplet_loss

OK_FORMAT = False
name = "q2"
points = 3


def mined(embeddings, labels, margin, *, self_positive=False, positive="farthest", negative="closest",
          squared=False, average="valid"):
    """Batch-hard loss from torch's pieces, right with the defaults, or with one thing changed."""
    d = torch.cdist(embeddings, embeddings)  # (N, N)
    if squared:
        d = d ** 2
    same = labels[:, None] == labels[None, :]  # (N, N)
    eye = torch.eye(len(labels), dtype=torch.bool)
    pos_mask = same if self_positive else same & ~eye
    neg_mask = ~same
    if positive == "farthest":
        hardest_pos = torch.where(pos_mask, d, torch.full_like(d, -1.0)).amax(dim=1)
    else:  # the closest positive
        hardest_pos = torch.where(pos_mask, d, torch.full_like(d, float("inf"))).amin(dim=1)
    if negative == "closest":
        hardest_neg = torch.where(neg_mask, d, torch.full_like(d, float("inf"))).amin(dim=1)
    else:
        hardest_neg = torch.where(neg_mask, d, torch.full_like(d, -1.0)).amax(dim=1)
    valid = pos_mask.any(dim=1) & neg_mask.any(dim=1)  # (N,)
    terms = torch.clamp(hardest_pos - hardest_neg + margin, min=0)
    if average == "all":  # anchors without a triplet count as 0 in the mean
        return torch.where(valid, terms, torch.zeros_like(terms)).mean()
    return terms[valid].mean()


def reference(embeddings, labels, margin):
    return batch_hard_triplet_loss(embeddings, labels, margin)


def variant(**changes):
    return lambda embeddings, labels, margin: mined(embeddings, labels, margin, **changes)


# labels of the batches: identities with several images, and lone images (which must be no anchor)
LABELS = [[0, 0, 0, 1, 1, 1, 2], [0, 0, 1, 1, 2, 3, 3, 4], [5, 5, 5, 5, 1, 2, 2, 2, 3],
          [0, 1, 1, 2, 2, 3, 3, 3, 4, 4]]


def _near_a_negative(embeddings, labels, draw):
    """Put every lone image next to an image of another identity, so that mining it as an anchor costs
    something (a lone anchor far from everyone would add a term of 0 and hide some mistakes)."""
    counts = (labels[:, None] == labels[None, :]).sum(dim=1)
    for lone in torch.nonzero(counts == 1).flatten().tolist():
        other = draw.choice(torch.nonzero(labels != labels[lone]).flatten().tolist())
        embeddings[lone] = embeddings[other] + 0.05 * draw.normal(embeddings.shape[1])
    return embeddings


def cases(draw):
    found = []
    for labels, dim, margin in zip(LABELS, (3, 5, 2, 8), (0.2, 1.0, 0.5, 2.0)):
        labels = torch.tensor(labels)
        embeddings = _near_a_negative(draw.normal(len(labels), dim), labels, draw)
        found.append(Case((embeddings, labels, margin), f"labels {labels.tolist()}, embeddings of dimension {dim}, "
                                                        f"margin={margin}"))
    n = draw.int(3, 5)
    labels = torch.tensor([draw.int(0, n - 1) for _ in range(12)] + [n])  # identity n has one image
    embeddings = _near_a_negative(draw.normal(13, 4), labels, draw)
    found.append(Case((embeddings, labels, 0.3), f"labels {labels.tolist()}, margin=0.3"))
    return found


QUESTION = Question(
    name="q2",
    function="fixed_batch_hard",
    points=points,
    reference=reference,
    oracle="companion.losses.batch_hard_triplet_loss (checked against a loop over anchors)",
    cases=cases,
    mistakes=(
        Mistake("every anchor is still its own positive (the bug of the given code): the positive mask must "
                "leave out the diagonal, so that the only image of an identity has no positive and is no "
                "anchor.", value=variant(self_positive=True)),
        Mistake("the hardest positive is the closest one: batch-hard takes the farthest image of the anchor's "
                "identity (and the closest of any other identity).", value=variant(positive="closest")),
        Mistake("the hardest negative is the farthest one: batch-hard takes the closest image of another "
                "identity.", value=variant(negative="farthest")),
        Mistake("the distances are squared: this loss uses Euclidean distances.", value=variant(squared=True)),
        Mistake("the mean runs over every anchor, those without a positive counting 0: average over the "
                "anchors that have both a positive and a negative.", value=variant(average="all")),
    ),
    hints=(
        "Which batches make the given code go wrong? Try labels where one identity has a single image.",
        "What is the distance of an anchor to itself, and is the anchor another image of its identity?",
        "An anchor needs a positive other than itself: the mask of positives is same & ~eye.",
    ),
    forbidden=Forbidden(modules=("companion.losses", "companion.verification"),
                        names=("batch_hard_triplet_loss", "triplet_margin_loss", "TripletMarginLoss"),
                        what="the corrected batch-hard loss"),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_fixed_batch_hard(fixed_batch_hard):
    QUESTION.assert_passes(fixed_batch_hard)
