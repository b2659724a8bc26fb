"""Exercise 14, question 2: soft targets, ``softmax(logits / T)`` from scratch, ``soft_targets``.

The reference is ``F.softmax(logits / T, dim=-1)``. Cases include large logits at low
temperatures, where ``exp`` overflows in float32 unless the largest logit is subtracted first.
Each known mistake is the softmax with one thing changed. Hinton, Vinyals & Dean (2015),
equation (1), https://arxiv.org/abs/1503.02531.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q2"
points = 2


def reference(logits, temperature):
    return F.softmax(logits / temperature, dim=-1)


def cases(draw):
    found = []
    for n, k, scale, t in [(1, 10, 3.0, 1.0), (4, 10, 5.0, 4.0), (3, 5, 2.0, 0.5), (6, 7, 4.0, 10.0),
                           (5, 3, 30.0, 0.25), (2, 10, 50.0, 1.0), (1, 2, 1.0, 20.0), (3, 10, 8.0, 2.5)]:
        t = round(t * draw.uniform(0.8, 1.25), 3)
        logits = draw.normal(n, k, scale=scale, dtype=torch.float32)
        found.append(Case((logits, t), f"logits ({n}, {k}) of scale {scale:g}, temperature {t:g}"))
    return found


def unstable(got, expected, args):
    """nan or +inf (exp overflowed, inf / inf) where the softmax is finite."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape or not got.is_floating_point():
        return None
    return bool((torch.isnan(got) | torch.isposinf(got)).any()) or None


def logarithms(got, expected, args):
    """Log-probabilities (exp of the output is the softmax), however computed."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape or not got.is_floating_point():
        return None
    return bool(torch.allclose(got.double().exp(), expected.double(), rtol=1e-4, atol=1e-6))


QUESTION = Question(
    name="q2",
    function="soft_targets",
    points=points,
    reference=reference,
    oracle="F.softmax(logits / temperature, dim=-1)",
    cases=cases,
    mistakes=(
        Mistake("the temperature is ignored: divide the logits by it before the softmax.",
                value=lambda z, t: F.softmax(z, dim=-1)),
        Mistake("the logits are multiplied by the temperature; divide them by it (a higher temperature must give "
                "a softer distribution).", value=lambda z, t: F.softmax(z * t, dim=-1)),
        Mistake("these are log-probabilities: return the probabilities themselves (each row sums to 1).",
                matches=logarithms),
        Mistake("the softmax is taken over the wrong dimension: normalise each row (over the K classes, the "
                "last dimension), not each column.", value=lambda z, t: F.softmax(z / t, dim=0)),
        Mistake("exp overflows for large logits at low temperature (inf / inf is nan): subtract each row's "
                "largest value of logits / T before exp; it cancels in the ratio.", matches=unstable),
    ),
    hints=(
        "p_i = exp(z_i / T) / sum_j exp(z_j / T), for each row of logits separately.",
        "Subtracting a row's maximum from z / T changes no probability and keeps exp from overflowing.",
        "keepdim=True keeps the row sums (N, 1) so that they broadcast against (N, K).",
    ),
    forbidden=Forbidden(
        ops=("aten._softmax", "aten.softmax", "aten._log_softmax", "aten.log_softmax", "aten.special_softmax"),
        modules=("companion.losses",),
        names=("softmax", "log_softmax", "Softmax", "LogSoftmax", "softmin", "gumbel_softmax"),
        what="the softmax",
    ),
)


@test_case(points=points)
def test_soft_targets(soft_targets):
    QUESTION.assert_passes(soft_targets)
