"""Tests of companion.losses.distillation_loss (chapter 14) against the formula written with torch's
F.kl_div and F.cross_entropy: values and gradients, gradcheck, no gradient into the teacher, the
T**2 scale of the soft term's gradient, and the error messages."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from companion.losses import distillation_loss


def reference(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float,
              alpha: float) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y), with torch's own functions."""
    kl = F.kl_div(F.log_softmax(student / temperature, dim=1), F.log_softmax(teacher.detach() / temperature, dim=1),
                  reduction="batchmean", log_target=True)  # sum over classes, mean over the batch
    return alpha * temperature**2 * kl + (1 - alpha) * F.cross_entropy(student, labels)


@pytest.mark.parametrize("seed", range(8))
def test_matches_the_formula_written_with_kl_div_and_cross_entropy(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    n, k = int(torch.randint(1, 17, (), generator=generator)), int(torch.randint(2, 12, (), generator=generator))
    temperature = float(torch.empty(()).uniform_(0.5, 10, generator=generator))
    alpha = float(torch.rand((), generator=generator))
    student = (3 * torch.randn(n, k, generator=generator)).requires_grad_(True)
    teacher = 5 * torch.randn(n, k, generator=generator)
    labels = torch.randint(0, k, (n,), generator=generator)
    ours = distillation_loss(student, teacher, labels, temperature, alpha)
    theirs = reference(student, teacher, labels, temperature, alpha)
    assert ours.shape == ()
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(torch.autograd.grad(ours, student)[0], torch.autograd.grad(theirs, student)[0])


def test_defaults_are_temperature_4_and_alpha_09() -> None:
    student, teacher, labels = torch.randn(5, 7), torch.randn(5, 7), torch.randint(0, 7, (5,))
    torch.testing.assert_close(distillation_loss(student, teacher, labels),
                               reference(student, teacher, labels, 4.0, 0.9))


@pytest.mark.parametrize(("temperature", "alpha"), [(1.0, 0.5), (4.0, 0.9), (20.0, 1.0), (0.3, 0.0)])
def test_gradcheck_in_float64(temperature: float, alpha: float) -> None:
    student = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    teacher = 3 * torch.randn(4, 6, dtype=torch.float64)
    labels = torch.tensor([0, 5, 2, 2])
    assert torch.autograd.gradcheck(lambda s: distillation_loss(s, teacher, labels, temperature, alpha), (student,))
    assert torch.autograd.gradgradcheck(lambda s: distillation_loss(s, teacher, labels, temperature, alpha),
                                        (student,))


def test_no_gradient_flows_into_the_teacher() -> None:
    student = torch.randn(6, 10, requires_grad=True)
    teacher = torch.randn(6, 10, requires_grad=True)  # e.g. logits of a teacher run without no_grad
    loss = distillation_loss(student, teacher, torch.randint(0, 10, (6,)))
    loss.backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0
    loss = distillation_loss(student, teacher, torch.randint(0, 10, (6,)))
    assert torch.autograd.grad(loss, teacher, allow_unused=True)[0] is None


def test_the_soft_term_gradient_is_T_times_q_minus_p_over_N() -> None:
    # d/dz_s [T^2 KL(p^T || q^T)] / N = T (q^T - p^T) / N: the student is pulled towards the soft targets.
    student = torch.randn(8, 10, dtype=torch.float64, requires_grad=True)
    teacher, labels = 4 * torch.randn(8, 10, dtype=torch.float64), torch.randint(0, 10, (8,))
    for t in (1.0, 3.0, 10.0):
        grad = torch.autograd.grad(distillation_loss(student, teacher, labels, t, alpha=1.0), student)[0]
        expected = t * (torch.softmax(student / t, 1) - torch.softmax(teacher / t, 1)) / len(student)
        torch.testing.assert_close(grad, expected.detach())


def test_T_squared_keeps_the_soft_gradient_scale_while_the_bare_KL_falls_as_one_over_T_squared() -> None:
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(64, 10, dtype=torch.float64, generator=generator).requires_grad_(True)
    teacher, labels = 2 * torch.randn(64, 10, dtype=torch.float64, generator=generator), torch.zeros(64, dtype=torch.long)
    temperatures = [8.0, 16.0, 32.0, 64.0]
    scaled, bare = [], []
    for t in temperatures:
        grad = torch.autograd.grad(distillation_loss(student, teacher, labels, t, alpha=1.0), student)[0]
        scaled.append(grad.norm().item())
        bare.append(grad.norm().item() / t**2)  # the gradient of KL alone, without the T^2 factor
    for i in range(len(temperatures) - 1):
        assert scaled[i] / scaled[i + 1] == pytest.approx(1.0, rel=0.03)  # the same scale at every T
        assert bare[i] / bare[i + 1] == pytest.approx(4.0, rel=0.03)  # doubling T: a quarter of the gradient


def test_special_cases_alpha_0_is_cross_entropy_and_matching_logits_leave_only_it() -> None:
    student, teacher, labels = torch.randn(5, 4), torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    torch.testing.assert_close(distillation_loss(student, teacher, labels, 3.0, alpha=0.0),
                               F.cross_entropy(student, labels))
    same = torch.randn(5, 4, requires_grad=True)
    loss = distillation_loss(same, same.detach().clone(), labels, 5.0, alpha=1.0)
    torch.testing.assert_close(loss, torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.autograd.grad(loss, same)[0], torch.zeros(5, 4), atol=1e-7, rtol=0)


def test_stays_finite_for_huge_logits_and_casts_the_teacher_to_the_student_dtype() -> None:
    student = torch.tensor([[1000.0, -1000.0, 0.0]], requires_grad=True)
    teacher = torch.tensor([[-1000.0, 1000.0, 0.0]], dtype=torch.float64)
    loss = distillation_loss(student, teacher, torch.tensor([0]), 2.0, 0.5)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    torch.testing.assert_close(loss, reference(student, teacher.float(), torch.tensor([0]), 2.0, 0.5))
    assert torch.isfinite(torch.autograd.grad(loss, student)[0]).all()


def test_refuses_bad_inputs_with_clear_messages() -> None:
    s, t, y = torch.randn(3, 4), torch.randn(3, 4), torch.tensor([0, 1, 3])
    with pytest.raises(ValueError, match=r"same shape \(N, K\).*\(3, 4\) and \(3, 5\)"):
        distillation_loss(s, torch.randn(3, 5), y)
    with pytest.raises(ValueError, match=r"same shape"):
        distillation_loss(s, torch.randn(2, 4), y)
    with pytest.raises(ValueError, match=r"student_logits must be 2-D \(N, K\)"):
        distillation_loss(torch.randn(3, 4, 2), t, y)
    with pytest.raises(ValueError, match=r"teacher_logits must be 2-D"):
        distillation_loss(s, torch.randn(4), y)
    with pytest.raises(TypeError, match=r"student_logits must have a floating-point dtype"):
        distillation_loss(torch.ones(3, 4, dtype=torch.long), t, y)
    with pytest.raises(TypeError, match=r"teacher_logits must be a torch.Tensor"):
        distillation_loss(s, [[0.0] * 4] * 3, y)
    with pytest.raises(ValueError, match="empty batch"):
        distillation_loss(torch.randn(0, 4), torch.randn(0, 4), torch.zeros(0, dtype=torch.long))
    with pytest.raises(TypeError, match=r"labels must be an int64 Tensor\[N\]"):
        distillation_loss(s, t, y.float())
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) = \(3,\)"):
        distillation_loss(s, t, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        distillation_loss(s, t, torch.tensor([0, 1, 4]))
    for temperature in (0, 0.0, -1.0, math.inf, math.nan, True, "4", None):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            distillation_loss(s, t, y, temperature=temperature)
    for alpha in (-0.1, 1.1, True, "0.5", None, math.nan):
        with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]"):
            distillation_loss(s, t, y, alpha=alpha)
