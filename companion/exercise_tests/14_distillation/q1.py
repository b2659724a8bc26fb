"""Exercise 14, question 1: predict, then measure, how the soft term's gradient scales with T.

The learner writes down a number before running anything: by what factor the gradient of the
bare soft term ``KL(softmax(v / T) || softmax(s / T))`` (without the ``T**2`` of the distillation
loss) shrinks when the temperature doubles from 16 to 32. The reference measures it with autograd
on random logits (about 4: the gradient is ``(q - p) / T`` and ``q - p`` itself falls like ``1 / T``
once the logits are small next to ``T``); the common wrong predictions are known mistakes.
Hinton, Vinyals & Dean (2015), section 2, https://arxiv.org/abs/1503.02531.
An otter-grader exception-based test file that also defines ``QUESTION`` for ``companion.grade``.
"""

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from companion.grade import Case, Mistake, Question

OK_FORMAT = False
name = "q1"
points = 2
LOW, HIGH = 16.0, 32.0


def bare_kl_gradient_norm(student, teacher, temperature):
    """|| d KL(p^T || q^T) / d s ||, the KL averaged over the batch, without the T^2 factor."""
    s = student.clone().requires_grad_(True)
    kl = F.kl_div(F.log_softmax(s / temperature, 1), F.log_softmax(teacher / temperature, 1),
                  reduction="batchmean", log_target=True)
    return torch.autograd.grad(kl, s)[0].norm().item()


def measured(student, teacher):
    """The factor by which the bare soft gradient shrinks from T = 16 to T = 32."""
    return bare_kl_gradient_norm(student, teacher, LOW) / bare_kl_gradient_norm(student, teacher, HIGH)


def cases(draw):
    student, teacher = draw.normal(64, 10), draw.normal(64, 10, scale=3.0)  # float64 logits
    return [Case((student, teacher), "random logits of 64 images and 10 classes, T from 16 to 32")]


def predict(function, student, teacher):
    """How the learner's answer is called: it takes no arguments; the logits are the grader's."""
    return function()


QUESTION = Question(
    name="q1",
    function="predicted_factor",
    points=points,
    reference=measured,
    oracle="the factor measured with autograd on random logits",
    cases=cases,
    call=predict,
    mistakes=(
        Mistake("2 is the factor for a gradient that falls like 1/T: there is one 1/T from the chain rule "
                "(d(s/T)/ds), but the difference q - p of the two softened distributions also shrinks like 1/T "
                "as both tend to the uniform distribution. Together: 1/T^2.", value=lambda s, t: 2.0),
        Mistake("1 means no change: that is what the T^2 factor of the distillation loss achieves; the question "
                "asks about the KL term alone, without it.", value=lambda s, t: 1.0),
        Mistake("a factor below 1 says the gradient grows; it shrinks as T rises (both distributions approach "
                "uniform), so the factor is old / new, above 1.", matches=lambda got, expected, args: (
                    isinstance(got, (int, float)) and 0 < got < 1)),
        Mistake("8 or more is too steep: the gradient is (q - p) / T, and q - p falls like 1/T, not faster.",
                matches=lambda got, expected, args: isinstance(got, (int, float)) and got >= 7),
    ),
    hints=(
        "The gradient of KL(p^T || q^T) with respect to the student's logit s_i is (q_i - p_i) / T. How does "
        "each factor depend on T when T is large?",
        "For large T, exp(s_i / T) is about 1 + s_i / T: how far from 1/K is q_i then?",
        "Return one Python number.",
    ),
    rtol=0.05,
    atol=0.0,
)


@test_case(points=points)
def test_predicted_factor(predicted_factor):
    QUESTION.assert_passes(predicted_factor)
