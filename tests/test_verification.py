"""companion.verification: ROC and AUC against scikit-learn (ties included), the threshold, the
samplers, the Siamese network, one-shot recognition and the error messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from companion import verification as V


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_scores(seed: int, n: int, ties: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = gen(seed)
    same = (torch.rand(n, generator=g) < 0.4).float()
    same[0], same[1] = 0.0, 1.0  # both kinds present
    scores = torch.randn(n, generator=g) + same
    if ties:  # few distinct values: many ties, across both kinds of pairs
        scores = torch.round(scores * 2) / 2
    return scores, same


# --- ROC and AUC -------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_roc_curve_equals_scikit_learn(seed, ties):
    scores, same = random_scores(seed, 10 + 17 * seed, ties)
    fpr, tpr, thresholds = V.roc_curve(scores, same)
    sk_fpr, sk_tpr, sk_thresholds = sk_roc_curve(same.numpy(), scores.double().numpy(), drop_intermediate=False)
    np.testing.assert_allclose(fpr.numpy(), sk_fpr)
    np.testing.assert_allclose(tpr.numpy(), sk_tpr)
    np.testing.assert_allclose(thresholds.numpy(), sk_thresholds)
    if ties:
        assert len(thresholds) < len(scores) + 1  # a tie is one step of the curve, not several


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_roc_auc_equals_scikit_learn(seed, ties):
    scores, same = random_scores(seed, 10 + 17 * seed, ties)
    assert V.roc_auc(scores, same) == pytest.approx(roc_auc_score(same.numpy(), scores.double().numpy()), abs=1e-12)


def test_roc_auc_is_the_probability_that_a_same_pair_outscores_a_different_one():
    scores, same = random_scores(3, 40, ties=True)
    pos, neg = scores[same == 1], scores[same == 0]
    wins = (pos[:, None] > neg[None, :]).double() + 0.5 * (pos[:, None] == neg[None, :]).double()
    assert V.roc_auc(scores, same) == pytest.approx(float(wins.mean()), abs=1e-12)


def test_roc_auc_extremes_and_a_tie_everywhere():
    same = torch.tensor([1, 1, 0, 0])
    assert V.roc_auc(torch.tensor([4.0, 3.0, 2.0, 1.0]), same) == 1.0
    assert V.roc_auc(torch.tensor([1.0, 2.0, 3.0, 4.0]), same) == 0.0
    assert V.roc_auc(torch.zeros(4), same) == 0.5  # one tie: the diagonal


def test_auc_is_the_trapezoid_rule():
    x, y = torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.0, 1.0, 1.0])
    assert V.auc(x, y) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="sorted in increasing order"):
        V.auc(torch.tensor([0.0, 1.0, 0.5]), y)
    with pytest.raises(ValueError, match="same length >= 2"):
        V.auc(torch.tensor([0.0]), torch.tensor([1.0]))


def test_roc_errors_name_the_problem():
    with pytest.raises(ValueError, match="pairs of both kinds"):
        V.roc_curve(torch.rand(5), torch.ones(5))
    with pytest.raises(ValueError, match="pairs of both kinds"):
        V.roc_auc(torch.rand(5), torch.zeros(5))
    with pytest.raises(ValueError, match="only 0 and 1"):
        V.roc_curve(torch.rand(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="one entry per pair"):
        V.roc_curve(torch.rand(3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="finite"):
        V.roc_curve(torch.tensor([0.0, float("nan")]), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        V.roc_curve([0.1, 0.2], torch.tensor([0, 1]))


# --- the verification threshold ---------------------------------------------------------------------

def test_best_threshold_separates_separable_pairs_and_counts_accuracy():
    d = torch.tensor([0.1, 0.3, 0.2, 0.9, 0.7, 0.8])
    same = torch.tensor([1, 1, 1, 0, 0, 0])
    t = V.best_threshold(d, same)
    assert t == pytest.approx(0.5)  # the midpoint between 0.3 and 0.7
    assert V.verification_accuracy(d, same, t) == 1.0
    assert V.verification_accuracy(d, same, 0.25) == pytest.approx(5 / 6)  # 0.3 is called different


@pytest.mark.parametrize("seed", range(5))
def test_best_threshold_beats_every_other_threshold_on_its_own_pairs(seed):
    g = gen(seed)
    same = (torch.rand(30, generator=g) < 0.5).float()
    d = torch.rand(30, generator=g) + 0.4 * (1 - same)
    best = V.verification_accuracy(d, same, V.best_threshold(d, same))
    for t in torch.linspace(-0.1, 1.5, 161).tolist() + d.tolist():
        assert V.verification_accuracy(d, same, t) <= best + 1e-12


def test_best_threshold_with_one_kind_calls_everything_that_kind():
    d = torch.tensor([0.2, 0.5, 0.9])
    assert V.verification_accuracy(d, torch.ones(3), V.best_threshold(d, torch.ones(3))) == 1.0
    assert V.verification_accuracy(d, torch.zeros(3), V.best_threshold(d, torch.zeros(3))) == 1.0


def test_threshold_errors():
    with pytest.raises(ValueError, match="empty"):
        V.best_threshold(torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match="only 0 and 1"):
        V.verification_accuracy(torch.rand(2), torch.tensor([0.5, 1.0]), 0.3)


# --- samplers ---------------------------------------------------------------------------------------

LABELS = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])  # identity 2 has a single image


def test_sample_pairs_gives_the_asked_share_of_same_pairs_and_never_an_image_with_itself():
    i, j, same = V.sample_pairs(LABELS, 200, generator=gen(1), positive_fraction=0.3)
    assert i.shape == j.shape == same.shape == (200,)
    assert int(same.sum()) == 60 and bool((same[:60] == 1).all()) and bool((same[60:] == 0).all())
    torch.testing.assert_close(same, (LABELS[i] == LABELS[j]).float())
    assert bool((i != j).all())
    assert 2 not in LABELS[i[:60]].tolist()  # the lone image of identity 2 has no same pair
    # every image with a partner appears in some same pair, in either place
    assert set(i[:60].tolist()) | set(j[:60].tolist()) == {0, 1, 2, 3, 4, 6, 7, 8, 9}


def test_sample_pairs_is_reproducible_with_a_seeded_generator():
    a = V.sample_pairs(LABELS, 50, generator=gen(7))
    b = V.sample_pairs(LABELS, 50, generator=gen(7))
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)


def test_sample_pairs_errors():
    with pytest.raises(ValueError, match="no identity has two images"):
        V.sample_pairs(torch.arange(5), 10)
    with pytest.raises(ValueError, match="one identity"):
        V.sample_pairs(torch.zeros(5, dtype=torch.int64), 10)
    with pytest.raises(ValueError, match="positive_fraction"):
        V.sample_pairs(LABELS, 10, positive_fraction=1.5)
    with pytest.raises(ValueError, match="n_pairs must be a positive int"):
        V.sample_pairs(LABELS, 0)
    with pytest.raises(TypeError, match="integer identities"):
        V.sample_pairs(LABELS.float(), 10)
    # only different pairs asked: one image per identity is enough
    _, _, same = V.sample_pairs(torch.arange(5), 10, positive_fraction=0.0)
    assert float(same.sum()) == 0


def test_sample_triplets_anchor_positive_negative():
    a, p, n = V.sample_triplets(LABELS, 300, generator=gen(2))
    assert bool((LABELS[a] == LABELS[p]).all()) and bool((a != p).all())
    assert bool((LABELS[a] != LABELS[n]).all())
    assert 5 not in a.tolist()  # the lone image cannot be an anchor
    with pytest.raises(ValueError, match="no identity has two images"):
        V.sample_triplets(torch.arange(4), 3)
    with pytest.raises(ValueError, match="one identity"):
        V.sample_triplets(torch.zeros(4, dtype=torch.int64), 3)


def test_pk_batches_hold_p_identities_of_k_different_images():
    labels = torch.arange(6).repeat_interleave(torch.tensor([5, 4, 4, 2, 6, 3]))  # (24,)
    sampler = V.PKBatchSampler(labels, p=3, k=3, batches=20, generator=gen(3))
    batches = list(sampler)
    assert len(batches) == len(sampler) == 20
    seen = set()
    for batch in batches:
        assert len(batch) == 9 and len(set(batch)) == 9  # no image twice
        ids = labels[torch.tensor(batch)].view(3, 3)  # (P, K)
        assert bool((ids == ids[:, :1]).all())  # each row one identity
        assert len(set(ids[:, 0].tolist())) == 3  # P different identities
        seen |= set(ids[:, 0].tolist())
    assert seen == {0, 1, 2, 4, 5}  # identity 3 has only 2 images < k


def test_pk_batch_sampler_errors():
    with pytest.raises(ValueError, match="only 1 of the 3 identities have 3"):
        V.PKBatchSampler(torch.tensor([0, 0, 0, 1, 1, 2]), p=2, k=3, batches=1)
    with pytest.raises(ValueError, match="k must be an int >= 2"):
        V.PKBatchSampler(LABELS, p=2, k=1, batches=1)
    with pytest.raises(ValueError, match="p must be an int >= 2"):
        V.PKBatchSampler(LABELS, p=1, k=2, batches=1)


# --- the network, training and one-shot recognition ---------------------------------------------------

def test_siamese_shares_the_weights_and_embeddings_are_unit_vectors():
    torch.manual_seed(0)
    net = V.Siamese(V.embedding_net(dim=16))
    x1, x2 = torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28)
    net.eval()
    e1, e2 = net(x1, x2)
    assert e1.shape == e2.shape == (4, 16)
    torch.testing.assert_close(e1.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(e1, net.embedder(x1))  # the same network for both inputs
    torch.testing.assert_close(net(x2, x1)[0], e2)
    torch.testing.assert_close(net.distance(x1, x2), (e1 - e2).norm(dim=1))
    torch.testing.assert_close(net.distance(x1, x1), torch.zeros(4))
    with pytest.raises(ValueError, match="same shape"):
        net(x1, x2[:3])


def test_fit_embedding_learns_to_separate_identities():
    g = gen(0)
    centres = torch.rand(4, 1, 28, 28, generator=g)
    labels = torch.arange(4).repeat(16)  # (64,)
    images = centres[labels] + 0.3 * torch.randn(64, 1, 28, 28, generator=g)
    torch.manual_seed(0)
    net = V.embedding_net(dim=8)
    losses = V.fit_embedding(net, images, labels, steps=30, p=4, k=4, lr=3e-3)
    assert len(losses) == 30 and np.mean(losses[-5:]) < losses[0]
    e = V.embed(net, images)
    i, j, same = V.sample_pairs(labels, 200, generator=g)
    assert V.roc_auc(-(e[i] - e[j]).norm(dim=1), same) > 0.95


def test_nearest_embedding_and_one_shot_accuracy():
    references = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    queries = torch.tensor([[1.0, 1.0], [9.0, 2.0], [1.0, 8.0], [6.0, 0.0]])
    predicted = V.nearest_embedding(references, torch.tensor([7, 8, 9]), queries)
    assert predicted.tolist() == [7, 8, 9, 8]
    g = gen(4)
    labels = torch.arange(3).repeat(10)
    separated = 100 * torch.eye(3)[labels] + torch.randn(30, 3, generator=g)
    assert V.one_shot_accuracy(separated, labels, episodes=5) == 1.0
    noise = torch.randn(3000, 3, generator=g)  # no identity information: chance is 1/3
    assert abs(V.one_shot_accuracy(noise, torch.arange(3).repeat(1000), episodes=20) - 1 / 3) < 0.03
    with pytest.raises(ValueError, match="more than shots = 1"):
        V.one_shot_accuracy(torch.rand(3, 2), torch.tensor([0, 0, 1]), episodes=1)
    with pytest.raises(ValueError, match="same network"):
        V.nearest_embedding(references, torch.tensor([7, 8, 9]), torch.rand(2, 3))
    with pytest.raises(ValueError, match="one entry per reference"):
        V.nearest_embedding(references, torch.tensor([7, 8]), queries)


def test_verification_scores_chooses_the_threshold_on_the_validation_pairs_only():
    g = gen(5)
    labels = torch.arange(3).repeat(30)  # (90,)
    val = 5 * torch.eye(3)[labels] + torch.randn(90, 3, generator=g)
    test = 5 * torch.eye(3)[labels] + torch.randn(90, 3, generator=g)
    scores = V.verification_scores(val, labels, test, labels, n_pairs=200, generator=gen(6))
    again = V.verification_scores(val, labels, test, labels, n_pairs=200, generator=gen(6))
    assert scores == again  # reproducible with the same generator
    assert scores["AUC"] > 0.95 and scores["accuracy"] > 0.9 and scores["one-shot accuracy"] > 0.9
    # spreading the test embeddings apart changes the test accuracy but not the threshold
    spread = V.verification_scores(val, labels, 3 * test, labels, n_pairs=200, generator=gen(6))
    assert spread["threshold"] == scores["threshold"]
    assert spread["accuracy"] < scores["accuracy"]
