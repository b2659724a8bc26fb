"""Losses of chapters 19, 21 and 25 against their references: written-out formulas, F.triplet_margin_loss,
torch.distributions' KL and scikit-learn's balanced class weights; values and gradients."""

from __future__ import annotations

import itertools

import numpy as np

import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight
from torch.distributions import Normal, kl_divergence

from companion import losses


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_contrastive_loss_is_hadsells_formula():
    x1, x2 = rand(8, 5, seed=1).requires_grad_(), rand(8, 5, seed=2)
    same = torch.tensor([1, 0, 1, 0, 0, 1, 1, 0])
    loss = losses.contrastive_loss(x1, x2, same, margin=3.0)
    d = torch.stack([torch.linalg.vector_norm(a - b) for a, b in zip(x1, x2)])
    expected = torch.stack([d[i] ** 2 if same[i] else torch.clamp(3.0 - d[i], min=0) ** 2
                            for i in range(8)]).mean() / 2
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(torch.autograd.grad(loss, x1)[0], torch.autograd.grad(expected, x1)[0])
    torch.testing.assert_close(losses.contrastive_loss(x1, x2, same.bool(), 3.0), loss)
    torch.autograd.gradcheck(lambda a: losses.contrastive_loss(a, x2, same, 3.0), (x1,))
    far = x2 + 100  # different identities already beyond the margin cost nothing
    x1 = x1.detach()
    assert float(losses.contrastive_loss(x1, far, torch.zeros(8), 3.0)) == 0.0


@pytest.mark.parametrize("margin", [0.2, 1.0, 5.0])
def test_triplet_loss_equals_torch(margin):
    a, p, n = (rand(10, 6, seed=s).requires_grad_() for s in (3, 4, 5))
    ours, theirs = losses.triplet_loss(a, p, n, margin), F.triplet_margin_loss(a, p, n, margin=margin)
    torch.testing.assert_close(ours, theirs)
    for x, g1, g2 in zip((a, p, n), torch.autograd.grad(ours, (a, p, n)), torch.autograd.grad(theirs, (a, p, n))):
        torch.testing.assert_close(g1, g2)


def batch_hard_by_loops(embeddings, labels, margin):
    d = torch.cdist(embeddings, embeddings)
    terms = []
    for i in range(len(labels)):
        pos = [d[i, j] for j in range(len(labels)) if j != i and labels[j] == labels[i]]
        neg = [d[i, j] for j in range(len(labels)) if labels[j] != labels[i]]
        if pos and neg:
            terms.append(torch.clamp(max(pos) - min(neg) + margin, min=0))
    return torch.stack(terms).mean()


@pytest.mark.parametrize("seed", range(4))
def test_batch_hard_triplet_loss_equals_loops(seed):
    embeddings = rand(12, 4, seed=seed).requires_grad_()
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 4, 4])  # identity 3 has no positive: skipped
    ours = losses.batch_hard_triplet_loss(embeddings, labels, margin=0.5)
    expected = batch_hard_by_loops(embeddings, labels, 0.5)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(torch.autograd.grad(ours, embeddings)[0],
                               torch.autograd.grad(expected, embeddings)[0])


def test_batch_hard_never_takes_the_anchor_as_its_own_positive():
    embeddings = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.5, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1])
    # Anchor 0: positive 1 at distance 3 (not itself at 0), negative 2 at 0.5 -> 3 - 0.5 + 0.2.
    # Anchor 1: positive 0 at 3, negative 2 at 2.5 -> 3 - 2.5 + 0.2. Anchor 2 has no positive.
    expected = ((3 - 0.5 + 0.2) + (3 - 2.5 + 0.2)) / 2
    assert float(losses.batch_hard_triplet_loss(embeddings, labels, 0.2)) == pytest.approx(expected)


def test_batch_hard_without_a_valid_anchor_is_zero_and_differentiable():
    embeddings = rand(4, 3).requires_grad_()
    loss = losses.batch_hard_triplet_loss(embeddings, torch.tensor([0, 1, 2, 3]))
    assert float(loss) == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(embeddings.grad, torch.zeros(4, 3))
    same = losses.batch_hard_triplet_loss(rand(3, 3).requires_grad_(), torch.tensor([1, 1, 1]))
    assert float(same) == 0.0


def test_kl_divergence_normal_equals_torch_distributions():
    mu, logvar = rand(6, 4, seed=7).requires_grad_(), rand(6, 4, seed=8).requires_grad_()
    ours = losses.kl_divergence_normal(mu, logvar)
    q = Normal(mu, (0.5 * logvar).exp())
    theirs = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(dim=1)
    assert ours.shape == (6,)
    torch.testing.assert_close(ours, theirs)
    for g1, g2 in zip(torch.autograd.grad(ours.sum(), (mu, logvar)), torch.autograd.grad(theirs.sum(), (mu, logvar))):
        torch.testing.assert_close(g1, g2)
    zero = losses.kl_divergence_normal(torch.zeros(2, 3), torch.zeros(2, 3))
    assert torch.equal(zero, torch.zeros(2))


@pytest.mark.parametrize("counts", [(5, 5, 5), (90, 9, 1), (3, 40, 7, 50)])
def test_balanced_class_weights_equal_scikit_learn(counts):
    labels = torch.tensor(list(itertools.chain.from_iterable([c] * n for c, n in enumerate(counts))))
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    ours = losses.balanced_class_weights(labels, len(counts))
    theirs = compute_class_weight("balanced", classes=np.arange(len(counts)), y=labels.numpy())
    torch.testing.assert_close(ours, torch.tensor(theirs, dtype=torch.float32))
    assert ours.dtype == torch.float32
    per_class = ours * torch.tensor(counts, dtype=torch.float32)  # every class weighs n / C in all
    torch.testing.assert_close(per_class, torch.full((len(counts),), len(labels) / len(counts)))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"class \[2\] has no example"):
        losses.balanced_class_weights(torch.tensor([0, 1, 1]), 3)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        losses.balanced_class_weights(torch.tensor([0, 2]), 2)
    with pytest.raises(ValueError, match="same must hold only 0 and 1"):
        losses.contrastive_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"must have the same shape \(N, D\)"):
        losses.triplet_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="labels must have one entry per embedding"):
        losses.batch_hard_triplet_loss(torch.zeros(3, 2), torch.tensor([0, 1]))
