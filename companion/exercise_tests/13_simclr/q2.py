"""Exercise 13, question 2: find the bug in an NT-Xent implementation, ``fixed_nt_xent``.

The notebook gives an NT-Xent whose denominator sums over all 2N projections, the anchor's own
similarity ``s_ii = 1`` included, the typical bug of hand-written contrastive losses. The learner
returns the corrected loss. The reference is torch: ``F.cross_entropy`` over the cosine similarity
matrix divided by the temperature, with its diagonal masked to -inf, and the other view as the
target (Chen et al., *A Simple Framework for Contrastive Learning of Visual Representations*,
ICML 2020, https://arxiv.org/abs/2002.05709, equation (1)). The known mistakes are the given code,
over-corrections (the positive taken out of the denominator too, the diagonal set to 0 instead of
removed) and a mean over N instead of 2N anchors. An otter-grader exception-based test file that
also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 3


def loss(z1, z2, temperature, *, diagonal="remove", positive_in_denominator=True, anchors="both"):
    """NT-Xent from torch's pieces, right with the defaults, or with one thing changed."""
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, D)
    logits = z @ z.T / temperature  # (2N, 2N)
    eye = torch.eye(2 * n, dtype=torch.bool)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])  # (2N,): the other view
    if diagonal == "remove":
        logits = logits.masked_fill(eye, float("-inf"))
    elif diagonal == "zero":
        logits = logits.masked_fill(eye, 0.0)
    positive = logits[torch.arange(2 * n), target]  # (2N,)
    if not positive_in_denominator:
        logits = logits.masked_fill(F.one_hot(target, 2 * n).bool(), float("-inf"))
    per_anchor = torch.logsumexp(logits, dim=1) - positive  # (2N,)
    if anchors == "first view":
        return per_anchor[:n].mean()
    if anchors == "sum over N":
        return per_anchor.sum() / n
    return per_anchor.mean()


def reference(z1, z2, temperature):
    n = len(z1)
    z = torch.cat([z1, z2])  # (2N, D)
    sim = F.cosine_similarity(z[:, None, :], z[None, :, :], dim=-1, eps=1e-12) / temperature  # (2N, 2N)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    return F.cross_entropy(sim, torch.cat([torch.arange(n, 2 * n), torch.arange(n)]))


def variant(**changes):
    return lambda z1, z2, temperature: loss(z1, z2, temperature, **changes)


def cases(draw):
    found = []
    for n, d, temperature in [(2, 3, 0.5), (3, 4, 1.0), (4, 8, 0.2), (5, 4, 0.5), (8, 16, 0.1), (6, 5, 2.0)]:
        z1 = draw.normal(n, d, scale=2.0)
        z2 = z1 + draw.normal(n, d)
        found.append(Case((z1, z2, temperature), f"z1 and z2 of shape ({n}, {d}), temperature={temperature}"))
    return found


QUESTION = Question(
    name="q2",
    function="fixed_nt_xent",
    points=points,
    reference=reference,
    oracle="F.cross_entropy over the masked cosine-similarity matrix (the other view as the target)",
    cases=cases,
    mistakes=(
        Mistake("the anchor itself is still in the denominator (the bug of the given code): the sum runs over "
                "k != i, the other 2N - 1 projections, and leaves out s_ii / T = 1 / T.",
                value=variant(diagonal="keep")),
        Mistake("the positive pair was taken out of the denominator as well: in SimCLR the denominator is a "
                "softmax over all 2N - 1 candidates, the positive included (only the anchor itself is left "
                "out); without the positive the loss is no longer a cross-entropy and can go negative.",
                value=variant(positive_in_denominator=False)),
        Mistake("the anchor's similarity is set to 0 instead of being removed: e^0 = 1 still adds to the "
                "denominator. Set it to -inf, or leave the term out of the sum.", value=variant(diagonal="zero")),
        Mistake("the loss is averaged over the N anchors of the first view only: every one of the 2N "
                "projections is an anchor.", value=variant(anchors="first view")),
        Mistake("the sum over the 2N anchors is divided by N: the loss is the mean over all 2N anchors.",
                value=variant(anchors="sum over N")),
    ),
    hints=(
        "Write the denominator of one anchor i as a sum and list which k it runs over. Then compare with "
        "what the given code sums.",
        "The diagonal of the similarity matrix is s_ii: how similar is a unit vector to itself?",
        "Only one term should go, and its exponential must become exactly 0.",
    ),
    forbidden=Forbidden(modules=("companion.losses", "companion.simclr"), names=("nt_xent",),
                        what="the corrected NT-Xent"),
    rtol=1e-4,
    atol=1e-5,
)


@test_case(points=points)
def test_fixed_nt_xent(fixed_nt_xent):
    QUESTION.assert_passes(fixed_nt_xent)
