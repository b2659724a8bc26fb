"""Tests of companion.losses (chapter 6): label smoothing against torch's cross_entropy(label_smoothing=)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from companion.losses import label_smoothing_cross_entropy, smooth_targets


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_label_smoothing_matches_torch_values_and_gradients(seed: int, reduction: str) -> None:
    generator = torch.Generator().manual_seed(seed)
    n, k = int(torch.randint(1, 9, (), generator=generator)), int(torch.randint(2, 12, (), generator=generator))
    eps = float(torch.rand((), generator=generator))
    logits = (3 * torch.randn(n, k, generator=generator)).requires_grad_(True)
    labels = torch.randint(0, k, (n,), generator=generator)
    ours = label_smoothing_cross_entropy(logits, labels, eps, reduction=reduction)
    theirs = F.cross_entropy(logits, labels, label_smoothing=eps, reduction=reduction)
    torch.testing.assert_close(ours, theirs)
    upstream = torch.randn_like(theirs)
    torch.testing.assert_close(torch.autograd.grad(ours, logits, upstream)[0],
                               torch.autograd.grad(theirs, logits, upstream)[0])


@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
def test_label_smoothing_gradcheck_and_the_plain_cross_entropy_at_zero(eps: float) -> None:
    logits = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 4, 2, 2])
    assert torch.autograd.gradcheck(lambda z: label_smoothing_cross_entropy(z, labels, eps), (logits,))
    if eps == 0.0:
        torch.testing.assert_close(label_smoothing_cross_entropy(logits, labels, 0.0), F.cross_entropy(logits, labels))


def test_the_loss_is_the_cross_entropy_against_the_smoothed_targets() -> None:
    logits, labels = torch.randn(6, 10), torch.randint(0, 10, (6,))
    targets = smooth_targets(labels, 10, 0.2)  # (6, 10)
    torch.testing.assert_close(targets.sum(1), torch.ones(6))
    torch.testing.assert_close(targets[torch.arange(6), labels], torch.full((6,), 0.8 + 0.02))
    torch.testing.assert_close(label_smoothing_cross_entropy(logits, labels, 0.2),
                               F.cross_entropy(logits, targets))  # torch's soft-target cross-entropy


def test_label_smoothing_stays_finite_for_huge_logits() -> None:
    logits = torch.tensor([[1000.0, -1000.0, 0.0]], requires_grad=True)
    loss = label_smoothing_cross_entropy(logits, torch.tensor([0]), 0.1)
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.tensor([0]), label_smoothing=0.1))
    assert torch.isfinite(torch.autograd.grad(loss, logits)[0]).all()


def test_label_smoothing_refuses_bad_inputs_with_clear_messages() -> None:
    logits, labels = torch.randn(3, 4), torch.tensor([0, 1, 3])
    with pytest.raises(TypeError, match=r"logits must be a floating-point Tensor\[N, K\]"):
        label_smoothing_cross_entropy(torch.randn(3, 4, 2), labels)
    with pytest.raises(TypeError, match=r"logits must be a floating-point"):
        label_smoothing_cross_entropy(torch.ones(3, 4, dtype=torch.int64), labels)
    with pytest.raises(TypeError, match=r"labels must be an int64 Tensor\[N\]"):
        label_smoothing_cross_entropy(logits, labels.float())
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\), got values from 0 to 4"):
        label_smoothing_cross_entropy(logits, torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="logits has 3 rows but labels has 2 entries"):
        label_smoothing_cross_entropy(logits, labels[:2])
    with pytest.raises(ValueError, match=r"label_smoothing must be a number in \[0, 1\], got 1.5"):
        label_smoothing_cross_entropy(logits, labels, 1.5)
    with pytest.raises(ValueError, match="reduction must be one of"):
        label_smoothing_cross_entropy(logits, labels, reduction="average")
    with pytest.raises(ValueError, match="num_classes"):
        smooth_targets(labels, 0)
