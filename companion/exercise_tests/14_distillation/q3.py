"""Exercise 14, question 3: find the bug in a distillation loss and fix it, ``distillation_loss``.

The notebook shows a colleague's loss that leaves out the ``T**2`` factor of the soft term (the
method's typical bug: the soft targets' weight then falls like ``1 / T**2`` as the temperature
rises). The learner writes the corrected loss. The grader calls it on random logits whose tensors
require gradients, and compares the loss and its gradients with respect to the student's and the
teacher's logits with the companion's ``distillation_loss`` (checked against ``F.kl_div`` and
``F.cross_entropy`` in tests/test_distillation.py). Each known mistake is the loss with one thing
changed. Hinton, Vinyals & Dean (2015), section 2, https://arxiv.org/abs/1503.02531.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import warnings

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question
from companion.losses import distillation_loss

OK_FORMAT = False
name = "q3"
points = 4


def loss_and_gradients(function, student, teacher, labels, temperature, alpha):
    """How the learner's loss is called: on leaf tensors that require gradients, then differentiated."""
    s, v = student.clone().requires_grad_(True), teacher.clone().requires_grad_(True)
    loss = function(s, v, labels, temperature, alpha)
    if not isinstance(loss, torch.Tensor) or loss.shape != () or not loss.requires_grad:
        raise TypeError("distillation_loss must return a scalar tensor that autograd can differentiate "
                        f"(got {type(loss).__name__}{' of shape ' + str(tuple(loss.shape)) if isinstance(loss, torch.Tensor) else ''}"
                        "); do not call .item() on it")
    grad_s, grad_v = torch.autograd.grad(loss, (s, v), allow_unused=True)
    return {"the loss": loss.detach(),
            "its gradient with respect to student_logits": torch.zeros_like(s) if grad_s is None else grad_s,
            "its gradient with respect to teacher_logits": torch.zeros_like(v) if grad_v is None else grad_v}


def variant(*, power=2, reduction="batchmean", reverse=False, teacher_at_1=False, hard_at_t=False,
            swap_alpha=False, detach=True):
    """The distillation loss, right with the defaults, or with one thing changed."""

    def loss(student, teacher, labels, temperature, alpha):
        t = temperature
        v = teacher.detach() if detach else teacher
        log_p = F.log_softmax(v / (1.0 if teacher_at_1 else t), dim=1)
        log_q = F.log_softmax(student / t, dim=1)
        with warnings.catch_warnings():  # reduction="mean" warns that it is not the KL (the mistake's point)
            warnings.simplefilter("ignore", UserWarning)
            if reverse:  # KL(q || p)
                kl = F.kl_div(log_p, log_q, reduction=reduction, log_target=True)
            else:
                kl = F.kl_div(log_q, log_p, reduction=reduction, log_target=True)
        hard = F.cross_entropy(student / t if hard_at_t else student, labels)
        a = 1 - alpha if swap_alpha else alpha
        return a * t**power * kl + (1 - a) * hard

    return loss


def call_variant(**changes):
    return lambda *args: loss_and_gradients(variant(**changes), *args)


def cases(draw):
    found = []
    for n, k in [(4, 10), (8, 10), (3, 5), (6, 3), (1, 10), (16, 7)]:
        temperature = round(draw.uniform(2.0, 8.0), 2)
        alpha = round(draw.uniform(0.2, 0.8), 2)
        student, teacher = draw.normal(n, k, scale=2.0), draw.normal(n, k, scale=4.0)  # float64
        labels = torch.randint(0, k, (n,), generator=draw.generator)
        found.append(Case((student, teacher, labels, temperature, alpha),
                          f"logits ({n}, {k}), temperature={temperature}, alpha={alpha}"))
    return found


QUESTION = Question(
    name="q3",
    function="distillation_loss",
    points=points,
    reference=lambda *args: loss_and_gradients(distillation_loss, *args),
    oracle="alpha T^2 KL(p^T || q^T) + (1 - alpha) CE (companion.losses.distillation_loss)",
    cases=cases,
    call=loss_and_gradients,
    mistakes=(
        Mistake("this is still the colleague's bug: the soft term lacks the factor T^2. Its gradient is "
                "(q - p) / T, which falls like 1/T^2, so without T^2 the soft targets fade as the temperature "
                "rises and alpha means something different at every T.", value=call_variant(power=0)),
        Mistake("the soft term is multiplied by T, not T^2: its gradient falls like 1/T^2 (one 1/T from the "
                "chain rule, one from q - p), so only T^2 restores its scale.", value=call_variant(power=1)),
        Mistake("F.kl_div's reduction='mean' divides by every element, N * K, not by the batch size N: use "
                "reduction='batchmean' (sum over the classes, mean over the batch).",
                value=call_variant(reduction="mean")),
        Mistake("the KL divergence is the wrong way round: F.kl_div(input, target) computes KL(target || input), "
                "with input the student's log-probabilities and target the teacher's distribution.",
                value=call_variant(reverse=True)),
        Mistake("the teacher's logits are not divided by the temperature: both distributions are softened, "
                "softmax(v / T) and softmax(s / T).", value=call_variant(teacher_at_1=True)),
        Mistake("the cross-entropy on the labels uses the softened student logits: the hard term is at "
                "temperature 1, F.cross_entropy(student_logits, labels).", value=call_variant(hard_at_t=True)),
        Mistake("alpha weighs the wrong term: alpha multiplies the soft term, 1 - alpha the cross-entropy "
                "on the labels.", value=call_variant(swap_alpha=True)),
        Mistake("a gradient reaches the teacher's logits: detach them (teacher_logits.detach()); the teacher "
                "is fixed while the student learns.", value=call_variant(detach=False)),
    ),
    hints=(
        "Run the colleague's loss with alpha=1 at T = 2, 4 and 8 and look at the size of the student's "
        "gradient: what should happen to it, and what does happen?",
        "The gradient of KL(p^T || q^T) with respect to the student's logits is (q^T - p^T) / T. "
        "Which power of T makes it independent of T at high temperature?",
        "Return the loss as a scalar tensor (no .item()), so that it can be differentiated.",
    ),
    forbidden=Forbidden(modules=("companion.losses",), what="the distillation loss"),
    rtol=1e-5,
    atol=1e-7,
)


@test_case(points=points)
def test_distillation_loss(distillation_loss):
    QUESTION.assert_passes(distillation_loss)
