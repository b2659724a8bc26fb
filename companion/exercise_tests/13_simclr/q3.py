"""Exercise 13, question 3 (predict, then verify): NT-Xent of the ideal projections, ``ideal_nt_xent``.

The learner predicts, by formula, the NT-Xent of a batch of N images whose two views have identical
projections while the projections of different images are orthogonal: every anchor has cosine
similarity 1 with its positive and 0 with each of its 2N - 2 negatives, so the loss is
``-log(e^(1/T) / (e^(1/T) + 2N - 2)) = log(1 + (2N - 2) e^(-1/T))``. The reference is the NT-Xent
of those projections computed by torch (``F.cross_entropy`` over the masked similarity matrix of
``z1 = z2 = I_N``), in float64 (Chen et al., https://arxiv.org/abs/2002.05709, equation (1)). The
known mistakes count the candidates wrongly or forget the temperature. An otter-grader
exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import math

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q3"
points = 2


def reference(n, temperature):
    z = F.normalize(torch.eye(n, dtype=torch.float64).repeat(2, 1), dim=1)  # (2N, N): pairs identical
    sim = z @ z.T / temperature  # (2N, 2N): cosine similarities over T
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    return float(F.cross_entropy(sim, torch.cat([torch.arange(n, 2 * n), torch.arange(n)])))


def formula(n, temperature, *, negatives=None, anchor_in=False, positive_in=True, scale=None):
    """-log(e^(1/T) / denominator), right with the defaults, or with one thing changed."""
    negatives = 2 * n - 2 if negatives is None else negatives
    inv_t = 1 / temperature if scale is None else scale
    denominator = negatives * math.exp(0.0) + (math.exp(inv_t) if positive_in else 0.0)
    if anchor_in:
        denominator += math.exp(inv_t)
    return -inv_t + math.log(denominator)


def variant(**changes):
    def value(n, temperature):
        resolved = {k: (v(n) if callable(v) else v) for k, v in changes.items()}
        return formula(n, temperature, **resolved)
    return value


def cases(draw):
    found = []
    for n, temperature in [(2, 0.5), (4, 0.5), (16, 1.0), (64, 0.5), (256, 0.2), ("random", "random")]:
        if n == "random":
            n, temperature = draw.int(3, 300), round(draw.uniform(0.2, 2.0), 3)
        found.append(Case((n, temperature), f"n={n}, temperature={temperature}"))
    return found


QUESTION = Question(
    name="q3",
    function="ideal_nt_xent",
    points=points,
    reference=reference,
    oracle="F.cross_entropy over the masked cosine similarities of the ideal projections (float64)",
    cases=cases,
    mistakes=(
        Mistake("the anchor is counted in its own denominator: it has similarity 1 with itself, which adds "
                "another e^(1/T). The candidates are the other 2N - 1 projections.",
                value=variant(anchor_in=True)),
        Mistake("the positive is missing from the denominator: the softmax runs over all 2N - 1 candidates, the "
                "positive among them, so the denominator is e^(1/T) + (2N - 2) e^0.",
                value=variant(positive_in=False)),
        Mistake("only N - 1 negatives are counted: both views of every other image are negatives, 2N - 2 of "
                "them.", value=variant(negatives=lambda n: n - 1)),
        Mistake("2N - 1 negatives are counted: of the 2N projections, one is the anchor and one its positive, "
                "which leaves 2N - 2 negatives.", value=variant(negatives=lambda n: 2 * n - 1)),
        Mistake("the temperature is forgotten: the logits are the similarities divided by T (1 / T for the "
                "positive, 0 for the negatives).", value=variant(scale=1.0)),
    ),
    hints=(
        "First count, for one anchor: how many candidates does it have, which one is the positive, and what "
        "are the cosine similarities with each?",
        "Each term of the denominator is exp(similarity / T). What is exp(0)?",
        "Try n = 2 by hand: four projections, two pairs, and check your count against the definition.",
    ),
    forbidden=Forbidden(modules=("companion.losses", "companion.simclr"),
                        names=("nt_xent", "cross_entropy", "log_softmax", "softmax", "logsumexp",
                               "cosine_similarity", "normalize"),
                        what="the value (by formula, not by computing the loss)"),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_ideal_nt_xent(ideal_nt_xent):
    QUESTION.assert_passes(ideal_nt_xent)
