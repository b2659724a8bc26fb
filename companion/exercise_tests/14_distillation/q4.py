"""Exercise 14, question 4: the soft term's gradient by hand, ``soft_gradient``.

The gradient of ``T**2 * KL(softmax(v / T) || softmax(s / T))``, averaged over the batch, with
respect to the student's logits ``s`` is ``T * (softmax(s / T) - softmax(v / T)) / N``. The
reference computes it with autograd; the learner must write it without autograd. Each known
mistake is the formula with one factor changed. Hinton, Vinyals & Dean (2015), equation (2),
https://arxiv.org/abs/1503.02531.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Forbidden, Mistake, Question

OK_FORMAT = False
name = "q4"
points = 3


def by_autograd(student, teacher, temperature):
    s = student.clone().requires_grad_(True)
    soft = temperature**2 * F.kl_div(F.log_softmax(s / temperature, 1), F.log_softmax(teacher / temperature, 1),
                                     reduction="batchmean", log_target=True)
    return torch.autograd.grad(soft, s)[0]


def formula(student, teacher, temperature, *, power=1, per_image=False, sign=1, softened=True):
    """T^power (q - p) / N, with q and p at temperature T (or 1), and the variants of the mistakes."""
    t = temperature if softened else 1.0
    q, p = F.softmax(student / t, dim=1), F.softmax(teacher / t, dim=1)
    return sign * temperature**power * (q - p) / (1 if per_image else len(student))


def variant(**changes):
    return lambda *args: formula(*args, **changes)


def cases(draw):
    found = []
    for n, k in [(4, 10), (8, 10), (3, 5), (6, 3), (1, 10), (12, 7)]:
        temperature = round(draw.uniform(1.5, 10.0), 2)
        student, teacher = draw.normal(n, k, scale=2.0), draw.normal(n, k, scale=4.0)  # float64
        found.append(Case((student, teacher, temperature), f"logits ({n}, {k}), temperature={temperature}"))
    return found


QUESTION = Question(
    name="q4",
    function="soft_gradient",
    points=points,
    reference=by_autograd,
    oracle="autograd on T^2 F.kl_div(..., reduction='batchmean')",
    cases=cases,
    mistakes=(
        Mistake("this is the gradient of the KL alone, (q - p) / (T N): the loss multiplies the KL by T^2, "
                "which multiplies its gradient by T^2 too.", value=variant(power=-1)),
        Mistake("the 1/T of the chain rule is missing: the student's logits enter the softmax as s / T, so "
                "d/ds brings a factor 1/T; with the T^2 of the loss that leaves T (q - p) / N.",
                value=variant(power=2)),
        Mistake("the mean over the batch is missing: the loss averages over the N images, so each image's "
                "gradient is divided by N.", value=variant(per_image=True)),
        Mistake("the sign is flipped: the gradient is q - p (the student's soft probabilities minus the "
                "teacher's), so that gradient descent moves q towards p.", value=variant(sign=-1)),
        Mistake("the softmaxes are taken at temperature 1: q and p are softmax(s / T) and softmax(v / T).",
                value=variant(softened=False)),
    ),
    hints=(
        "Start with one image and the KL alone: d/dz_i of -sum_k p_k log softmax(z)_k is softmax(z)_i - p_i. "
        "Here z = s / T.",
        "Then collect the factors: T^2 from the loss, 1/T from z = s / T, 1/N from the mean over the batch.",
        "Return a tensor of the shape of student_logits, (N, K).",
    ),
    forbidden=Forbidden(
        ops=("aten.kl_div",),
        modules=("companion.losses",),
        names=("backward", "grad", "autograd", "kl_div", "jacobian", "vjp", "functional_call", "func"),
        what="the gradient (with the formula, without autograd)",
    ),
    rtol=1e-6,
    atol=1e-9,
)


@test_case(points=points)
def test_soft_gradient(soft_gradient):
    QUESTION.assert_passes(soft_gradient)
