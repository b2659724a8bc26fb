"""Exercise 22, question 1 (predict, then verify): the generator's non-saturating loss, ``non_saturating_loss``.

Goodfellow et al., *Generative Adversarial Nets*, NeurIPS 2014 (https://arxiv.org/abs/1406.2661),
section 3: the minimax game's generator loss ``log(1 - D(G(z)))`` saturates when the discriminator
rejects the generated samples, so the generator is trained to maximise ``log D(G(z))`` instead. With
the discriminator's logits ``a`` for generated samples the loss is ``mean(-log sigmoid(a)) =
mean(softplus(-a))``. The learner first predicts the derivative of both losses with respect to the
logit at ``D(G(z)) = 0.001``, then writes the loss in a form that stays finite for logits of +-800.
The reference is ``F.binary_cross_entropy_with_logits(a, ones)``; the grader compares the loss and
its gradient with respect to the logits. An otter-grader exception-based test file that also
defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2


def loss_and_gradient(function, logits):
    a = logits.clone().requires_grad_(True)
    loss = function(a)
    if not isinstance(loss, torch.Tensor) or loss.shape != () or not loss.requires_grad:
        got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise TypeError(f"non_saturating_loss must return a scalar tensor that autograd can differentiate, got "
                        f"{got} (do not call .item() or detach it)")
    (grad,) = torch.autograd.grad(loss, a)
    return {"the loss": loss.detach(), "its gradient with respect to the logits": grad}


def of(loss):
    return lambda logits: loss_and_gradient(loss, logits)


def unstable(got, expected, args):
    """inf or nan where the loss is finite: exp or log overflowed for large logits."""
    if not isinstance(got, dict):
        return None
    values = [v for v in got.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    return any(bool(~torch.isfinite(v).all()) for v in values) or None


MISTAKES = (
    Mistake("this is the saturating loss, log(1 - D(G(z))) = -softplus(a), the minimax game's own: its "
            "gradient per logit is -D(G(z)), almost 0 when the discriminator rejects the samples. The "
            "non-saturating loss is -log D(G(z)) = softplus(-a).",
            value=of(lambda a: -F.softplus(a).mean())),
    Mistake("this is the discriminator's loss on generated samples (label 0), softplus(a): minimising it "
            "pushes D(G(z)) down. The generator wants its samples called real: label 1, softplus(-a).",
            value=of(lambda a: F.softplus(a).mean())),
    Mistake("the sign is flipped: -log D(G(z)) is positive and falls as D(G(z)) rises; you return its "
            "negative, which the optimiser would make as negative as possible by pushing D(G(z)) to 0.",
            value=of(lambda a: -F.softplus(-a).mean())),
    Mistake("the loss is summed over the batch: take the mean, so that its size (and the step size) does "
            "not depend on the batch size.",
            value=lambda a: of(lambda t: F.softplus(-t).sum())(a) if len(a) > 1 else None),
    Mistake("the loss overflows for large logits (exp(800) is inf, log(0) is -inf): write -log sigmoid(a) "
            "as softplus(-a) = max(-a, 0) + log(1 + exp(-|a|)), or with F.softplus / F.logsigmoid.",
            matches=unstable),
)


def cases(draw):
    found = []
    for n, scale in [(1, 1.0), (5, 3.0), (16, 2.0), (3, 8.0)]:
        found.append(Case((draw.normal(n, scale=scale),), f"{n} logits of scale {scale}"))
    found.append(Case((torch.tensor([-6.906755, -0.405465, 6.9], dtype=torch.float64),),
                      "3 logits: D(G(z)) = 0.001, 0.4 and 0.999"))
    found.append(Case((torch.tensor([800.0, -800.0, 50.0, -50.0], dtype=torch.float64),),
                      "4 logits as large as +-800"))
    return found


QUESTION = Question(
    name="q1",
    function="non_saturating_loss",
    points=points,
    reference=of(lambda a: F.binary_cross_entropy_with_logits(a, torch.ones_like(a))),
    oracle="F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))",
    cases=cases,
    call=loss_and_gradient,
    mistakes=MISTAKES,
    hints=(
        "D(G(z)) = sigmoid(a). Write -log D(G(z)) in terms of a, then average over the batch.",
        "-log sigmoid(a) = log(1 + exp(-a)) = softplus(-a). Which of exp(-a) and log(...) overflows for "
        "a = -800?",
        "F.softplus is written to stay finite; so is max(-a, 0) + log1p(exp(-|a|)).",
    ),
    forbidden=Forbidden(ops=("aten.binary_cross_entropy_with_logits", "aten.binary_cross_entropy"),
                        modules=("companion.gan",),
                        names=("binary_cross_entropy_with_logits", "binary_cross_entropy", "BCEWithLogitsLoss",
                               "BCELoss", "generator_loss"),
                        what="the non-saturating loss"),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_non_saturating_loss(non_saturating_loss):
    QUESTION.assert_passes(non_saturating_loss)
