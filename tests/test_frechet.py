"""The Fréchet distance of companion.frechet against written-out computations: scipy.linalg.sqrtm on
random SPD matrices, the closed forms for diagonal, commuting and equal covariances; symmetry, zero for
identical statistics, the feature statistics of the zoo classifier, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from companion import frechet, zoo


def random_spd(dim: int, rng: np.random.Generator, rank: int | None = None) -> np.ndarray:
    """A random symmetric positive (semi-)definite matrix, ``A A^T / rank`` with ``A`` of shape (dim, rank)."""
    rank = dim + 3 if rank is None else rank
    a = rng.standard_normal((dim, rank)) * rng.uniform(0.2, 3.0, size=(dim, 1))
    return a @ a.T / rank


def written_out(mu1, sigma1, mu2, sigma2) -> float:
    """The textbook formula with scipy's general matrix square root of S1 S2 (as FID code computes it)."""
    root = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(root).real)


@pytest.mark.parametrize("dim, seed", [(1, 0), (2, 1), (5, 2), (16, 3), (40, 4), (64, 5)])
def test_equals_scipy_sqrtm_on_random_spd_matrices(dim, seed):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.standard_normal(dim), rng.standard_normal(dim) * 2
    sigma1, sigma2 = random_spd(dim, rng), random_spd(dim, rng)
    ours = frechet.frechet_distance(mu1, sigma1, mu2, sigma2)
    assert ours == pytest.approx(written_out(mu1, sigma1, mu2, sigma2), rel=1e-9, abs=1e-9)
    assert ours > 0


@pytest.mark.parametrize("seed", range(4))
def test_diagonal_covariances_closed_form(seed):
    # Diagonal covariances commute: (S1 S2)^{1/2} = diag(sqrt(a b)), so the spread term is
    # sum (sqrt(a) - sqrt(b))^2, the squared distance between the standard deviations.
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.1, 4.0, size=7), rng.uniform(0.1, 4.0, size=7)
    mu1, mu2 = rng.standard_normal(7), rng.standard_normal(7)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_one_dimension_is_the_distance_of_means_and_standard_deviations():
    # d^2 = (m1 - m2)^2 + (s1 - s2)^2 for N(m1, s1^2) and N(m2, s2^2)
    got = frechet.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[0.25]]))
    assert got == pytest.approx(3.0 ** 2 + (2.0 - 0.5) ** 2, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_equal_covariances_leave_the_squared_distance_of_means(seed):
    rng = np.random.default_rng(seed)
    sigma = random_spd(12, rng)
    mu1, mu2 = rng.standard_normal(12), rng.standard_normal(12)
    expected = float(((mu1 - mu2) ** 2).sum())
    assert frechet.frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_singular_commuting_covariances_need_no_eps():
    # Rank-deficient covariances (fewer images than features, dead ReLU units) with a shared
    # eigenbasis Q: the spread term is sum (sqrt(a) - sqrt(b))^2 over the eigenvalues.
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    a = np.array([3.0, 2.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.2, 0.0, 1.5])
    b = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.2, 0.0, 4.0])
    sigma1, sigma2 = (q * a) @ q.T, (q * b) @ q.T
    mu = np.zeros(10)
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    # A zero eigenvalue comes out as +-1e-16 and its square root as 1e-8: the precision of a
    # square root near 0 is sqrt(float64's epsilon) times the scale, whatever the method.
    assert frechet.frechet_distance(mu, sigma1, mu, sigma2) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("seed", range(3))
def test_symmetric_in_its_two_gaussians(seed):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.standard_normal(9), rng.standard_normal(9)
    sigma1, sigma2 = random_spd(9, rng), random_spd(9, rng, rank=4)
    assert frechet.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(
        frechet.frechet_distance(mu2, sigma2, mu1, sigma1), rel=1e-10)


@pytest.mark.parametrize("rank", [None, 3])
def test_zero_for_identical_statistics(rank):
    # Also for an ill-conditioned or singular covariance, where sqrtm(S @ S) loses precision.
    rng = np.random.default_rng(11)
    mu, sigma = rng.standard_normal(40) * 10, random_spd(40, rng, rank=rank) * 100
    got = frechet.frechet_distance(mu, sigma, mu, sigma)
    assert got >= 0.0
    assert got < 1e-9 * np.trace(sigma)
    assert frechet.frechet_distance(mu, sigma, mu + 0.1, sigma) == pytest.approx(40 * 0.01, rel=1e-6)


def test_tensors_and_float32_give_the_float64_result():
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    sigma1, sigma2 = random_spd(6, rng), random_spd(6, rng)
    expected = frechet.frechet_distance(mu1, sigma1, mu2, sigma2)
    as_tensors = [torch.from_numpy(v) for v in (mu1, sigma1, mu2, sigma2)]
    assert frechet.frechet_distance(*as_tensors) == pytest.approx(expected, rel=1e-12)
    as_float32 = [v.float() for v in as_tensors]  # float32 round-off in the inputs only
    assert frechet.frechet_distance(*as_float32) == pytest.approx(expected, rel=1e-5)


def test_errors_name_the_problem():
    mu, sigma = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match="1-D"):
        frechet.frechet_distance(np.zeros((1, 3)), sigma, mu, sigma)
    with pytest.raises(ValueError, match="same number of features"):
        frechet.frechet_distance(mu, sigma, np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match=r"\(3, 3\) covariance"):
        frechet.frechet_distance(mu, sigma, mu, np.eye(4))
    with pytest.raises(ValueError, match="symmetric"):
        frechet.frechet_distance(mu, sigma, mu, np.triu(np.ones((3, 3))))
    with pytest.raises(ValueError, match="positive semi-definite"):
        frechet.frechet_distance(mu, -np.eye(3), mu, sigma)
    with pytest.raises(ValueError, match="NaN or infinite"):
        frechet.frechet_distance(np.array([0.0, np.nan, 0.0]), sigma, mu, sigma)
    with pytest.raises(ValueError, match="NaN or infinite"):
        frechet.frechet_distance(mu, sigma, mu, np.diag([1.0, np.inf, 1.0]))
    with pytest.raises(TypeError, match="numpy array or a torch.Tensor"):
        frechet.frechet_distance([0.0, 0.0, 0.0], sigma, mu, sigma)


# --- features of images ---------------------------------------------------------------------------

def test_default_features_are_the_penultimate_layer_of_the_zoo_classifier(fashion_small):
    images = fashion_small[2][:64]
    classifier = zoo.load("fmnist_cnn")
    with torch.no_grad():
        hidden = frechet.feature_network()(images)  # (64, 40)
        torch.testing.assert_close(classifier.classifier[-1](hidden), classifier(images))
    assert hidden.shape == (64, 40)
    assert (hidden >= 0).all()  # ReLU outputs
    mu, sigma = frechet.feature_statistics(images, batch_size=10)
    features = hidden.double().numpy()
    np.testing.assert_allclose(mu, features.mean(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False), rtol=1e-5, atol=1e-6)


def test_statistics_with_a_given_model_are_numpys_mean_and_covariance():
    images = torch.rand(50, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    mu, sigma = frechet.feature_statistics(images, model=nn.Flatten(), batch_size=7)
    flat = images.flatten(1).double().numpy()  # (50, 18)
    np.testing.assert_allclose(mu, flat.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(flat, rowvar=False), rtol=1e-10, atol=1e-12)
    distance = frechet.image_frechet_distance(images, images.flip(0), model=nn.Flatten())
    assert distance == pytest.approx(0.0, abs=1e-9)  # the same set in another order


def test_scale_real_vs_real_is_far_below_noise_vs_real(fashion_small):
    x_test = fashion_small[2]  # 1,000 test images
    first, second = x_test[:500], x_test[500:]
    noise = torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    real_vs_real = frechet.image_frechet_distance(first, second)
    noise_vs_real = frechet.image_frechet_distance(noise, second)
    assert 0 < real_vs_real < 5
    assert noise_vs_real > 20 * real_vs_real


def test_image_errors_name_the_problem():
    images = torch.rand(4, 1, 28, 28)
    with pytest.raises(ValueError, match="at least 2 images"):
        frechet.feature_statistics(images[:1])
    with pytest.raises(ValueError, match="4-D"):
        frechet.feature_statistics(images[:, 0])
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        frechet.feature_statistics(torch.rand(4, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        frechet.feature_statistics(images * 2 - 1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        frechet.feature_statistics(torch.full((4, 1, 28, 28), float("nan")))
    with pytest.raises(TypeError, match="floating-point"):
        frechet.feature_statistics((images * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="same shape per image"):
        frechet.image_frechet_distance(images, torch.rand(4, 1, 14, 14))
    with pytest.raises(ValueError, match="at least 2 images"):
        frechet.image_frechet_distance(images, images[:1])
    with pytest.raises(ValueError, match="batch_size"):
        frechet.feature_statistics(images, batch_size=0)
    with pytest.raises(ValueError, match="NaN or infinite features"):
        frechet.feature_statistics(images, model=lambda x: x.flatten(1) / 0 * 0)
