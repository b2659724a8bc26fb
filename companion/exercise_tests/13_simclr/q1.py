"""Exercise 13, question 1: the candidates' probabilities of every anchor, ``candidate_probabilities``.

For the 2N projections of a batch (two views of N images), row ``i`` of the answer is the softmax
over the candidates ``k != i`` of the cosine similarities ``s_ik / T``, with 0 for ``k = i``: the
probability that anchor ``i`` picks ``k`` as its partner. NT-Xent (Chen et al., *A Simple Framework
for Contrastive Learning of Visual Representations*, ICML 2020, https://arxiv.org/abs/2002.05709,
equation (1)) is minus the mean log of the probabilities of the true partners. The reference is
torch: ``F.cosine_similarity`` and ``torch.softmax`` over the similarity matrix with its diagonal
masked to -inf. An otter-grader exception-based test file that also defines ``QUESTION`` for
``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 3


def probabilities(z1, z2, temperature, *, normalise=True, mask="-inf", order=(0, 1), scale="divide"):
    """The softmax over candidates, right with the defaults, or with one thing changed."""
    z = torch.cat([(z1, z2)[order[0]], (z1, z2)[order[1]]])  # (2N, D)
    if normalise:
        sim = F.cosine_similarity(z[:, None, :], z[None, :, :], dim=-1, eps=1e-12)  # (2N, 2N)
    else:
        sim = z @ z.T  # (2N, 2N): raw dot products
    logits = sim / temperature if scale == "divide" else sim * temperature
    eye = torch.eye(len(z), dtype=torch.bool)
    if mask == "-inf":
        logits = logits.masked_fill(eye, float("-inf"))
    elif mask == "zero":  # the similarity zeroed: e^0 = 1 still counts
        logits = logits.masked_fill(eye, 0.0)
    probs = torch.softmax(logits, dim=1)  # (2N, 2N)
    if mask == "after":  # the diagonal dropped from the output but kept in the normalisation
        probs = probs.masked_fill(eye, 0.0)
    return probs


def reference(z1, z2, temperature):
    return probabilities(z1, z2, temperature)


def variant(**changes):
    return lambda z1, z2, temperature: probabilities(z1, z2, temperature, **changes)


def cases(draw):
    found = []
    for n, d, temperature in [(2, 3, 0.5), (3, 2, 1.0), (4, 8, 0.2), (5, 4, 0.5), (6, 16, 0.1), (8, 5, 2.0)]:
        z1 = draw.normal(n, d, scale=2.0)
        z2 = z1 + draw.normal(n, d)  # the other view: close to the first, not equal
        found.append(Case((z1, z2, temperature), f"z1 and z2 of shape ({n}, {d}), temperature={temperature}"))
    return found


QUESTION = Question(
    name="q1",
    function="candidate_probabilities",
    points=points,
    reference=reference,
    oracle="torch.softmax over F.cosine_similarity / temperature, with the diagonal masked to -inf",
    cases=cases,
    mistakes=(
        Mistake("the anchor is one of its own candidates: row i must give probability 0 to k = i and share "
                "all of its probability among the other 2N - 1 projections (mask the diagonal before the "
                "softmax).", value=variant(mask="none")),
        Mistake("the diagonal is set to 0 before the softmax: a similarity of 0 is not an absent candidate, "
                "since e^0 = 1 still adds to the denominator. Set it to -inf (or leave those terms out of the "
                "sum).", value=variant(mask="zero")),
        Mistake("the diagonal is zeroed after the softmax: the other probabilities of the row were normalised "
                "with the anchor's own term in the denominator, so the row no longer sums to 1. Mask before "
                "normalising.", value=variant(mask="after")),
        Mistake("the projections are not normalised: NT-Xent uses cosine similarities, the dot products of "
                "unit vectors (divide each row by its norm first).", value=variant(normalise=False)),
        Mistake("the temperature multiplies the similarities: the logits are s_ik / T.", value=variant(scale="multiply")),
        Mistake("the two views are stacked in the other order: rows 0..N-1 are z1 (the first view), rows "
                "N..2N-1 are z2.", value=variant(order=(1, 0))),
    ),
    hints=(
        "Stack the two views into one (2N, D) tensor first; then every similarity is one matrix product.",
        "Cosine similarity is the dot product of unit vectors.",
        "Which value of a logit makes its exponential exactly 0?",
    ),
    forbidden=Forbidden(modules=("companion.losses", "companion.simclr"), names=("nt_xent",),
                        what="the candidates' probabilities"),
)


@test_case(points=points)
def test_candidate_probabilities(candidate_probabilities):
    QUESTION.assert_passes(candidate_probabilities)
