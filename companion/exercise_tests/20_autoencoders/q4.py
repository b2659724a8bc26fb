"""Exercise 20, question 4: find the bug in a reconstruction loss on normalised images, ``reconstruction_loss``.

Classifiers usually see images normalised to zero mean and unit variance, ``(x - mean) / std``. An
autoencoder whose decoder ends in a sigmoid (or whose loss is the binary cross-entropy with logits,
as in Vincent et al., ICML 2008) must be compared with targets in [0, 1]: with the normalised images
as targets (values from -0.81 to 2.02 for Fashion-MNIST) the cross-entropy is unbounded below, and
training drives the logits to infinity. The learner undoes the normalisation for the target and
writes the binary cross-entropy with logits in a numerically stable form. The reference is torch's
``F.binary_cross_entropy_with_logits(logits, normalised * std + mean)``. An otter-grader
exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 3


def bce(logits, target, reduction="mean"):
    return F.binary_cross_entropy_with_logits(logits, target, reduction=reduction)


def reference(logits, normalised, mean, std):
    return bce(logits, normalised * std + mean)


def unstable(got, expected, args):
    """inf or nan where the loss is finite: exp or log overflowed for large logits."""
    if not isinstance(got, torch.Tensor) or not got.is_floating_point():
        return None
    return bool(~torch.isfinite(got).all()) or None


MISTAKES = (
    Mistake("this is still the colleague's bug: the targets are the normalised images, with values below 0 "
            "and above 1, where the binary cross-entropy has no minimum (it falls without end as the logits "
            "grow). Undo the normalisation, target = normalised * std + mean, which is in [0, 1].",
            value=lambda z, x, m, s: bce(z, x)),
    Mistake("the images are normalised a second time instead of being restored: normalised = "
            "(x - mean) / std, so the target is x = normalised * std + mean.",
            value=lambda z, x, m, s: bce(z, (x - m) / s)),
    Mistake("the mean is added before multiplying by std: undo the steps in reverse order, first times "
            "std, then plus the mean (x = normalised * std + mean).",
            value=lambda z, x, m, s: bce(z, (x + m) * s)),
    Mistake("the sigmoid is applied twice: the logits are the decoder's output before the sigmoid, and the "
            "cross-entropy with logits applies it once itself.",
            value=lambda z, x, m, s: bce(torch.sigmoid(z), x * s + m)),
    Mistake("the loss is summed over the pixels: take the mean over every pixel of every image.",
            value=lambda z, x, m, s: bce(z, x * s + m, reduction="sum")),
    Mistake("the loss overflows for large logits (exp(200) is inf, log(0) is -inf): write it as "
            "max(a, 0) - a t + log(1 + exp(-|a|)), or with F.softplus / F.logsigmoid, which stay finite.",
            matches=unstable),
)


def cases(draw):
    found = []
    for n, side, scale in [(2, 5, 2.0), (3, 4, 5.0), (1, 6, 1.0), (4, 3, 3.0)]:
        pixels = torch.rand((n, 1, side, side), generator=draw.generator, dtype=torch.float64)
        mean, std = round(draw.uniform(0.2, 0.5), 3), round(draw.uniform(0.2, 0.4), 3)
        logits = draw.normal(n, 1, side, side, scale=scale)
        found.append(Case((logits, (pixels - mean) / std, mean, std),
                          f"logits ({n}, 1, {side}, {side}), images normalised with mean {mean} and std {std}"))
    pixels = torch.rand((2, 1, 4, 4), generator=draw.generator, dtype=torch.float64)
    logits = draw.normal(2, 1, 4, 4, scale=1.0)
    logits[0, 0, 0, :] = torch.tensor([800.0, -800.0, 50.0, -50.0], dtype=torch.float64)
    found.append(Case((logits, (pixels - 0.286) / 0.353, 0.286, 0.353),
                      "logits (2, 1, 4, 4) with some as large as +-800, images normalised with mean 0.286 and "
                      "std 0.353"))
    return found


QUESTION = Question(
    name="q4",
    function="reconstruction_loss",
    points=points,
    reference=reference,
    oracle="F.binary_cross_entropy_with_logits(logits, normalised * std + mean)",
    cases=cases,
    mistakes=MISTAKES,
    hints=(
        "Which values can a target of the binary cross-entropy take? Print the smallest and largest value of "
        "the colleague's targets.",
        "The network's input may stay normalised; only the loss's target has to go back to [0, 1].",
        "-[t log(sigmoid(a)) + (1 - t) log(1 - sigmoid(a))] = softplus(a) - t a, and softplus(a) = "
        "max(a, 0) + log(1 + exp(-|a|)).",
    ),
    forbidden=Forbidden(ops=("aten.binary_cross_entropy_with_logits", "aten.binary_cross_entropy"),
                        modules=("companion.autoencoder",),
                        names=("binary_cross_entropy_with_logits", "binary_cross_entropy", "BCEWithLogitsLoss",
                               "BCELoss"),
                        what="the binary cross-entropy with logits"),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_reconstruction_loss(reconstruction_loss):
    QUESTION.assert_passes(reconstruction_loss)
