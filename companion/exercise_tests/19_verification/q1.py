"""Exercise 19, question 1: find the bug in a contrastive loss, ``fixed_contrastive_loss``.

The notebook gives a contrastive loss that computes the squared distance once and uses it in both
terms, so that the margin's hinge acts on ``d**2`` instead of ``d``: the typical "squared versus
plain distance" bug. The learner returns the corrected loss of Hadsell, Chopra & LeCun,
*Dimensionality Reduction by Learning an Invariant Mapping*, CVPR 2006,
``mean(y d**2 + (1 - y) max(0, m - d)**2) / 2``. The reference is the written-out formula in
torch (``torch.linalg.vector_norm`` for ``d``); the known mistakes are the given code and the
other ways to misplace a square or a factor. An otter-grader exception-based test file that also
defines ``QUESTION`` for ``companion.grade``.
"""

import torch
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 3


def loss(x1, x2, same, margin, *, hinge_on="d", pull="d2", hinge_power=2, half=True, reduce="mean"):
    """The contrastive loss, right with the defaults, or with one thing changed."""
    d = torch.linalg.vector_norm(x1 - x2, dim=1)  # (N,)
    y = same.to(x1.dtype)
    near = {"d2": d ** 2, "d": d}[pull]
    gap = margin - {"d": d, "d2": d ** 2}[hinge_on]
    far = torch.clamp(gap, min=0) ** hinge_power
    terms = y * near + (1 - y) * far  # (N,)
    total = terms.mean() if reduce == "mean" else terms.sum()
    return total / 2 if half else total


def reference(x1, x2, same, margin):
    return loss(x1, x2, same, margin)


def variant(**changes):
    return lambda x1, x2, same, margin: loss(x1, x2, same, margin, **changes)


def cases(draw):
    found = []
    for n, d, margin, scale in [(6, 3, 1.0, 0.4), (8, 5, 2.0, 0.6), (10, 2, 1.5, 0.5), (12, 8, 3.0, 0.5),
                                (7, 4, 0.5, 0.15)]:
        x1 = draw.normal(n, d)
        x2 = x1 + draw.normal(n, d, scale=scale)  # some pairs inside the margin, some beyond it
        same = torch.tensor([draw.int(0, 1) for _ in range(n)], dtype=torch.float64)
        same[0], same[1] = 1.0, 0.0  # both kinds in every case
        found.append(Case((x1, x2, same, margin), f"x1, x2 of shape ({n}, {d}), margin={margin}"))
    return found


QUESTION = Question(
    name="q1",
    function="fixed_contrastive_loss",
    points=points,
    reference=reference,
    oracle="the contrastive loss written out in torch, mean(y d^2 + (1 - y) max(0, m - d)^2) / 2",
    cases=cases,
    mistakes=(
        Mistake("the margin's hinge is still applied to the squared distance (the bug of the given code): "
                "a different pair costs max(0, m - d)^2 with the plain distance d = sqrt(d2), while a same "
                "pair costs d^2.", value=variant(hinge_on="d2")),
        Mistake("the same-identity term uses the plain distance d: the formula pulls same pairs with d^2 "
                "(its gradient fades as the pair gets close).", value=variant(pull="d")),
        Mistake("the hinge is not squared: a different pair costs max(0, m - d)^2.", value=variant(hinge_power=1)),
        Mistake("the factor 1/2 is missing: the loss is the mean over the pairs, divided by 2.",
                value=variant(half=False)),
        Mistake("the pairs' losses are summed: the loss is their mean (then halved).", value=variant(reduce="sum")),
    ),
    hints=(
        "Write the two terms of the formula side by side with the two terms of the given code. Which "
        "quantity is each one built from?",
        "The code computes d2, the squared distance, once. Which of the two terms needs the plain distance?",
        "d = d2.sqrt(), and the hinge compares the margin with d.",
    ),
    forbidden=Forbidden(modules=("companion.losses", "companion.verification"),
                        names=("contrastive_loss", "hinge_embedding_loss", "cosine_embedding_loss"),
                        what="the corrected contrastive loss"),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_fixed_contrastive_loss(fixed_contrastive_loss):
    QUESTION.assert_passes(fixed_contrastive_loss)
