"""The course's measure of generated images: a Fréchet distance in a zoo classifier's feature space.

Fit a Gaussian to the features of real images, ``N(mu1, S1)``, and one to the features of
generated images, ``N(mu2, S2)``. The Fréchet (2-Wasserstein) distance between the two Gaussians is

    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})

(Dowson & Landau, 1982, *The Fréchet distance between multivariate normal distributions*, J.
Multivariate Analysis 12(3), https://doi.org/10.1016/0047-259X(82)90077-X). It is 0 for equal
statistics and grows as the means move apart or the spreads differ, so a generator whose samples
are too alike (low variance, "mode collapse") is penalised as well as one whose samples look wrong.

**This is not the FID.** The Fréchet Inception Distance (Heusel et al., 2017, *GANs Trained by a
Two Time-Scale Update Rule Converge to a Local Nash Equilibrium*, https://arxiv.org/abs/1706.08500)
is the same formula on the 2048 pool features of an ImageNet Inception-v3 network; no such network
installs offline, and Fashion-MNIST's 28x28 grey images are far from ImageNet. The features here
are the 40 hidden units of the zoo's ``fmnist_cnn`` classifier (the input of its last linear
layer: ``classifier[:-1](features(x))``), a Fashion-MNIST classifier with 92% test accuracy. Its
numbers are therefore on their own scale, not comparable with FIDs in papers, and only comparable
between runs that use the same feature network and the same numbers of images (the estimate is
biased upward for small samples). The scale, measured with the default network on the
Fashion-MNIST test set (chapter 21 recomputes it):

* real vs real (two disjoint halves of the 10,000 test images, 5,000 each): about 0.3 (about 1
  with 1,000 images each: the small-sample bias);
* uniform noise vs real (5,000 noise images in [0, 1] vs 5,000 test images): about 140;
* for comparison, the test images blurred by a 3x3 box filter vs the other half: about 28.

A good generator lands far below the noise, and no sample of real images sits at 0.

**How the square root is computed.** ``Tr((S1 S2)^{1/2})`` is the sum of the square roots of the
eigenvalues of ``S1 S2``. ``S1 S2`` is not symmetric, and ``scipy.linalg.sqrtm(S1 @ S2)`` (what
most FID code calls) can return small imaginary parts or fail on singular covariances, which FID
code patches by adding ``eps * I``. Instead, with the symmetric square roots ``A1 = S1^{1/2}`` and
``A2 = S2^{1/2}``: ``S1 S2 = A1 A1 A2 A2`` has the same eigenvalues as ``A1 A2 A2 A1 = B B^T``
with ``B = A1 A2`` (``XY`` and ``YX`` share their eigenvalues), and the eigenvalues of ``B B^T``
are the squared singular values of ``B``. So

    Tr((S1 S2)^{1/2}) = sum of the singular values of S1^{1/2} S2^{1/2}  (its nuclear norm),

computed in float64: each square root from a symmetric eigendecomposition (``numpy.linalg.eigh``,
negative round-off eigenvalues set to 0), then ``numpy.linalg.svd`` of the product. Nothing turns
complex, singular covariances (fewer images than features, dead ReLU units) need no ``eps``, and
the result is symmetric in the two Gaussians. Taking singular values of ``B`` rather than square
roots of the eigenvalues of ``B B^T`` avoids squaring the round-off: for identical statistics the
singular values are the eigenvalues of ``S`` itself, so the distance is 0 to float64 precision
even when ``S`` is singular (the eigenvalue route leaves ``sqrt(1e-16 * ||S||^2)`` per zero
eigenvalue). The result is clipped at 0 against round-off.

Introduced in chapter 21, *Variational autoencoders*; used again in chapters 22 (GANs) and 24
(diffusion models).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor, nn

from companion._checks import check_positive_int, check_tensor

__all__ = ["IMAGE_SHAPE", "feature_network", "feature_statistics", "frechet_distance",
           "image_frechet_distance", "trace_sqrt_product"]

#: The input the default feature network expects: greyscale 28x28 images in [0, 1].
IMAGE_SHAPE = (1, 28, 28)

ArrayLike = np.ndarray | Tensor
FeatureModel = nn.Module | Callable[[Tensor], Tensor]


# --- the distance between two Gaussians ---------------------------------------------------------

def _as_float64(x: object, name: str) -> np.ndarray:
    """``x`` (a NumPy array or a tensor) as a float64 NumPy array."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or a torch.Tensor, got {type(x).__name__}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_covariance(sigma: np.ndarray, dim: int, name: str) -> np.ndarray:
    """Check that ``sigma`` is a ``(dim, dim)`` symmetric positive semi-definite matrix; return it symmetrised."""
    if sigma.shape != (dim, dim):
        raise ValueError(f"{name} must be a ({dim}, {dim}) covariance matrix to match its mean of "
                         f"{dim} features, got shape {sigma.shape}")
    scale = max(float(np.abs(sigma).max()), np.finfo(np.float64).tiny)
    if not np.allclose(sigma, sigma.T, rtol=0.0, atol=1e-6 * scale):
        raise ValueError(f"{name} must be symmetric (a covariance matrix); "
                         f"max |S - S^T| = {np.abs(sigma - sigma.T).max():.3g}")
    sigma = (sigma + sigma.T) / 2  # remove float32 round-off asymmetry
    lowest = float(np.linalg.eigvalsh(sigma)[0])
    if lowest < -1e-6 * scale:
        raise ValueError(f"{name} must be positive semi-definite (a covariance matrix); "
                         f"its smallest eigenvalue is {lowest:.3g}")
    return sigma


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric PSD matrix, from its eigendecomposition."""
    values, vectors = np.linalg.eigh(sigma)  # (D,), (D, D)
    roots = np.sqrt(np.clip(values, 0.0, None))  # round-off can make a zero eigenvalue -1e-17
    return (vectors * roots) @ vectors.T  # V diag(roots) V^T, (D, D)


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr((S1 S2)^{1/2})`` for symmetric PSD ``S1, S2`` (float64): the nuclear norm of ``S1^{1/2} S2^{1/2}``."""
    product = _sqrt_psd(sigma1) @ _sqrt_psd(sigma2)  # (D, D); B B^T has the eigenvalues of S1 S2
    return float(np.linalg.svd(product, compute_uv=False).sum())


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """The Fréchet distance ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})`` between two Gaussians.

    (This is the squared 2-Wasserstein distance, the quantity FID code reports; see the module
    docstring for how the matrix square root is computed and why this is not the FID.)

    Args:
        mu1, mu2 (array[D]): the means (NumPy arrays or tensors; computed in float64).
        sigma1, sigma2 (array[D, D]): the covariance matrices, symmetric positive semi-definite.

    Returns:
        The distance, a float >= 0; 0 for identical statistics, symmetric in its two Gaussians.

    Raises:
        TypeError: an argument is not a NumPy array or a tensor of real numbers.
        ValueError: a mean is not 1-D, the dimensions differ, a covariance is not ``(D, D)``,
            symmetric and positive semi-definite, or a value is NaN or infinite.
    """
    mu1, mu2 = _as_float64(mu1, "mu1"), _as_float64(mu2, "mu2")
    sigma1, sigma2 = _as_float64(sigma1, "sigma1"), _as_float64(sigma2, "sigma2")
    if mu1.ndim != 1 or mu2.ndim != 1:
        raise ValueError(f"mu1 and mu2 must be 1-D vectors of D features, got shapes {mu1.shape} and {mu2.shape}")
    if mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must have the same number of features, got {mu1.shape[0]} and "
                         f"{mu2.shape[0]}: were both computed with the same feature network?")
    dim = mu1.shape[0]
    sigma1 = _check_covariance(sigma1, dim, "sigma1")
    sigma2 = _check_covariance(sigma2, dim, "sigma2")
    mean_term = float(((mu1 - mu2) ** 2).sum())
    spread_term = float(np.trace(sigma1) + np.trace(sigma2)) - 2 * trace_sqrt_product(sigma1, sigma2)
    return max(mean_term + spread_term, 0.0)  # round-off can leave -1e-13 for equal statistics


# --- features of images --------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _zoo_features() -> nn.Module:
    from companion import zoo

    classifier = zoo.load("fmnist_cnn")
    # backbone: (N, 1, 28, 28) -> (N, 32, 7, 7); classifier[:-1]: Flatten, Linear, ReLU -> (N, 40)
    return nn.Sequential(classifier.backbone, classifier.classifier[:-1]).eval()


def feature_network() -> nn.Module:
    """The default feature network: the zoo's ``fmnist_cnn`` up to its penultimate layer.

    ``(N, 1, 28, 28)`` images in [0, 1] -> ``(N, 40)`` features (the ReLU outputs that the last
    linear layer turns into the 10 class scores). Loaded once and shared; in eval mode.
    """
    return _zoo_features()


def _check_images(images: object, name: str, default_model: bool) -> Tensor:
    images = check_tensor(images, name, ndim=4, shape_hint="(N, C, H, W)", floating=True)
    if len(images) < 2:
        raise ValueError(f"{name} must hold at least 2 images to estimate a covariance, got {len(images)}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if default_model:
        if tuple(images.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"the default feature network (the zoo's fmnist_cnn) takes (N, 1, 28, 28) images, "
                             f"got {name} of shape {tuple(images.shape)}")
        low, high = float(images.min()), float(images.max())
        if low < -1e-3 or high > 1 + 1e-3:
            raise ValueError(f"the default feature network takes images in [0, 1] (as companion.data gives "
                             f"them), but {name} spans [{low:.3g}, {high:.3g}]; map a tanh output in "
                             "[-1, 1] with (x + 1) / 2")
    return images


@torch.no_grad()
def _features(images: Tensor, model: FeatureModel, batch_size: int) -> np.ndarray:
    if isinstance(model, nn.Module):
        model.eval()
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
    else:
        device = images.device
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].to(device)
        chunks.append(model(batch).flatten(1).double().cpu())  # (B, D)
    features = torch.cat(chunks).numpy()  # (N, D)
    if not np.isfinite(features).all():
        raise ValueError("the feature network returned NaN or infinite features")
    return features


def feature_statistics(images: Tensor, model: FeatureModel | None = None,
                       batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """The mean and covariance of the features of ``images`` (float64).

    Args:
        images (Tensor[N, C, H, W]): floating point, N >= 2; for the default network
            ``(N, 1, 28, 28)`` in [0, 1].
        model: maps a batch of images to ``(B, D)`` features (or anything that flattens to it); default
            :func:`feature_network` (the zoo's ``fmnist_cnn`` up to its 40 penultimate units). Modules
            are put in eval mode; the images are moved to the module's device batch by batch.
        batch_size: images per forward pass.

    Returns:
        ``mu`` (array[D]) and ``sigma`` (array[D, D]), the sample covariance (denominator ``N - 1``),
        as float64 NumPy arrays. With fewer images than features, ``sigma`` is singular, which
        :func:`frechet_distance` accepts, but the distance is then a poor estimate.

    Raises:
        TypeError: ``images`` is not a floating-point tensor.
        ValueError: not 4-D, fewer than 2 images, NaN or infinite values, or (default network) not
            ``(N, 1, 28, 28)`` in [0, 1]; non-finite features.
    """
    check_positive_int(batch_size, "batch_size")
    images = _check_images(images, "images", model is None)
    features = _features(images, feature_network() if model is None else model, batch_size)  # (N, D)
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(features.shape[1], -1)


def image_frechet_distance(real: Tensor, generated: Tensor, model: FeatureModel | None = None,
                           batch_size: int = 500) -> float:
    """The Fréchet distance between the feature statistics of two sets of images (not the FID).

    ``frechet_distance(*feature_statistics(real), *feature_statistics(generated))``. Compare only
    numbers computed with the same feature network and the same numbers of images: with the
    default network, two disjoint halves of the Fashion-MNIST test set (5,000 images each) are
    about 0.3 apart and uniform noise is about 140 from real images (see the module docstring).

    Args:
        real, generated (Tensor[N, C, H, W], Tensor[M, C, H, W]): the two sets, with the same image
            shape; N, M >= 2.
        model, batch_size: as for :func:`feature_statistics`.

    Raises:
        TypeError, ValueError: as for :func:`feature_statistics`, and image shapes that differ.
    """
    real = check_tensor(real, "real", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    generated = check_tensor(generated, "generated", ndim=4, shape_hint="(M, C, H, W)", floating=True)
    if real.shape[1:] != generated.shape[1:]:
        raise ValueError(f"real and generated images must have the same shape per image, got "
                         f"{tuple(real.shape[1:])} and {tuple(generated.shape[1:])}")
    check_positive_int(batch_size, "batch_size")
    _check_images(real, "real", model is None)
    _check_images(generated, "generated", model is None)
    mu1, sigma1 = feature_statistics(real, model, batch_size)
    mu2, sigma2 = feature_statistics(generated, model, batch_size)
    return frechet_distance(mu1, sigma1, mu2, sigma2)
